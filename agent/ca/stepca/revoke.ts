// Revocation at step-ca's /1.0/revoke (smallstep/certificates api/revoke.go), authenticated by
// the certificate itself over mTLS.
import { CaRefusedError, NoRevocationError } from "../../common/errors.js";
import type { RevokeReason, RevokeRequest } from "../backend.js";
import { revokedLeaf } from "../common.js";
import type { Connection, StepCaClient } from "./client.js";

/** RFC 5280 5.3.1 CRLReason codes, step-ca's reasonCode (golang.org/x/crypto/ocsp). */
const REVOKE_REASON_CODES: Record<RevokeReason, number> = {
  unspecified: 0,
  keyCompromise: 1,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
};

/**
 * The body's serial must be the client certificate's, and 0.19 implements passive revocation only
 * (recorded in the CA's database; from then on it refuses to renew the certificate,
 * authority/authorize.go authorizeRenew). A CA without a database answers 501; a certificate
 * revoked before, 400 "already revoked": done, so a retried leave is harmless.
 */
export async function revoke(
  client: StepCaClient,
  connection: Connection,
  req: RevokeRequest,
): Promise<void> {
  const { leaf, serial } = revokedLeaf(req.certPem, req.kind);
  const description = client.servers.description;
  const cannot = `cannot revoke ${req.kind} (serial ${serial})`;
  const keyPem = req.keyPem;
  if (keyPem === undefined)
    throw new CaRefusedError(
      `${description}: ${cannot}: its key is no longer on this node, and step-ca authenticates a revocation by the certificate's own key (mTLS): revoke it at the CA with a provisioner (step ca revoke), or let it expire`,
    );
  if (leaf.notAfter.getTime() <= client.ctx.clock.now())
    throw new CaRefusedError(
      `${description}: ${cannot}: it expired on ${leaf.notAfter.toISOString()} and an expired certificate cannot authenticate the mTLS revocation`,
    );
  const noDatabase = (status: number, from: string) =>
    status === 501
      ? new NoRevocationError(
          `${from}: ${cannot}: the CA has no database to record revocations (ca.json "db"): revoke it there once it has one, or let it expire`,
        )
      : undefined;
  try {
    await client.call({
      method: "POST",
      path: "/1.0/revoke",
      body: () =>
        JSON.stringify({
          serial,
          reasonCode: REVOKE_REASON_CODES[req.reason],
          reason: req.reason,
          passive: true,
        }),
      // The whole chain: step-ca verifies a client certificate against its roots only
      // (ca/tls.go ClientCAs), and after a signer change the old intermediate is not its own.
      tls: { ...connection.tls, cert: req.certPem, key: keyPem },
      what: `revoking ${req.kind} (serial ${serial})`,
      unauthorized: "the CA refused the certificate (HTTP 401)",
      special: noDatabase,
    });
  } catch (err) {
    if (err instanceof CaRefusedError && /is already revoked/.test(err.message)) return;
    throw err;
  }
}
