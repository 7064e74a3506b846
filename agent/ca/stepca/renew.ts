// Renewal with the current certificate (smallstep/certificates api/rekey.go, api/renew.go;
// `step ca renew`): over mTLS at /1.0/rekey (a fresh key) or /1.0/renew (the same key), or with a
// token signed by the current key at /1.0/renew (the same key: through a TLS-terminating proxy,
// after expiry). Whether to renew at all is the engine's decision (engine/issue.ts); this only
// talks to the CA and says, with a RenewalRefusedError, when enrolling again is the way out.
import { createPrivateKey, type KeyObject } from "node:crypto";
import { CaRefusedError, RenewalRefusedError } from "../../common/errors.js";
import { peculiar } from "../../pki/peculiar.js";
import { parseCert, splitPemCertificates, type CertInfo } from "../../pki/x509.js";
import type { Renewed, RenewRequest } from "../backend.js";
import type { StepCaRenewAuth, StepCaSettings } from "../stepca-settings.js";
import type { TlsTrust } from "../http.js";
import { signX5cToken, type JwsSigner } from "../x5c.js";
import { chainOf, messageOf, type Connection, type StepCaClient } from "./client.js";

const RENEWAL_REFUSED =
  "the CA refused the current certificate (HTTP 401): it may be revoked, issued by another CA, or its provisioner may have renewal disabled";

const TOKEN_RENEWAL_REFUSED =
  "the CA refused the renew token signed by the current certificate's key (HTTP 401): the certificate may be revoked or issued by another CA, its provisioner may have renewal disabled, or the node's clock may be off by more than a minute";

/** Lifetime of a renew token: `step ca renew --mtls=false` mints one per request. */
const RENEW_TOKEN_LIFETIME_S = 300;

/**
 * Whether the answer to an mTLS renewal says the client certificate did not reach step-ca, as
 * behind a TLS-terminating proxy: step-ca 0.19 (api/rekey.go, api/renew.go) answers 400 "missing
 * client certificate"; a proxy that wants a certificate itself answers 403 (not step-ca's JSON
 * error) or, nginx, 495/496 ("SSL certificate error", "SSL certificate required"). step-ca's own
 * 401 means it got the certificate and refused it (revoked, renewal disabled): a token signed by
 * the same key would be refused too.
 */
export function mtlsRefused(status: number, body: string): boolean {
  if (status === 400) return /missing client certificate/i.test(messageOf(body) ?? body);
  if (status === 403) return messageOf(body) === undefined;
  return status === 495 || status === 496;
}

/**
 * The ways to try a step-ca renewal, in order (cas.<ca>.renewAuth). An expired certificate cannot
 * authenticate a TLS handshake, so after expiry only the token can renew it; "auto" tries the
 * token after mTLS only when mtlsRefused says the certificate never reached the CA, and goes
 * straight to the token once mTLS was refused in this run.
 */
export function renewalPaths(
  auth: StepCaRenewAuth,
  expired: boolean,
  mtlsRefusedBefore: boolean,
): ("mtls" | "token")[] {
  if (auth === "token") return ["token"];
  if (auth === "mtls") return expired ? [] : ["mtls"];
  return expired || mtlsRefusedBefore ? ["token"] : ["mtls", "token"];
}

/** How `renew` authenticates to a step-ca (status: README "Renewal paths"), by renewAuth. */
export function stepCaRenewalPath(settings: StepCaSettings): string {
  // enrol.ts renewal: the kubelet's provisioner may disable renewal.
  if (settings.identity === "tpm")
    return "X5C enrolment with the machine key in the TPM (a fresh key each time)";
  switch (settings.renewAuth ?? "auto") {
    case "mtls":
      return "mTLS with the current certificate";
    case "token":
      return "a token signed by the current key (key kept)";
    default:
      return "mTLS with the current certificate, else a token signed by its key";
  }
}

/** An mTLS renewal the CA did not get the client certificate for (mtlsRefused). */
class MtlsRefusedError extends CaRefusedError {}

/** What one run's renewals learn: why mTLS failed ("auto" then goes straight to the token). */
export interface RenewalMemory {
  mtlsRefusal?: string;
}

async function csrSpki(csrPem: string): Promise<Buffer> {
  const x509 = await peculiar();
  return Buffer.from(new x509.Pkcs10CertificateRequest(csrPem).publicKey.rawData);
}

/**
 * /1.0/rekey (a new key in the CSR) or /1.0/renew (the same key),
 * the current certificate in the TLS handshake.
 */
async function renewMtls(
  client: StepCaClient,
  tls: TlsTrust | undefined,
  req: RenewRequest,
  current: CertInfo,
): Promise<Renewed> {
  const mtls: TlsTrust = { ...tls, cert: req.currentCertPem, key: req.currentKeyPem };
  const sameKey = (await csrSpki(req.csrPem)).equals(current.spki);
  const doing = sameKey ? "renewing" : "rekeying";
  const refused = (status: number, from: string, body: string) =>
    mtlsRefused(status, body)
      ? new MtlsRefusedError(
          `${from} ${doing} ${req.kind} over mTLS: the CA did not get the client certificate (HTTP ${status}${messageOf(body) ? `: ${messageOf(body)}` : ""})`,
        )
      : undefined;
  const { answer, what } = await client.call({
    method: "POST",
    path: sameKey ? "/1.0/renew" : "/1.0/rekey",
    ...(sameKey ? {} : { body: () => JSON.stringify({ csr: req.csrPem }) }),
    tls: mtls,
    what: `${doing} ${req.kind}`,
    unauthorized: RENEWAL_REFUSED,
    special: refused,
  });
  return { chainPem: chainOf(answer, what), keptCurrentKey: false };
}

/**
 * /1.0/renew with "Authorization: Bearer <token>": an x5cInsecure token signed by the current
 * key (step-ca 0.19 api/renew.go, authority.AuthorizeRenewToken: sub = the leaf's CN, aud = the
 * CA's /1.0/renew URL, iss "step-ca-client/1.0" as `step ca renew --mtls=false` writes it). No
 * CSR: the CA certifies the current key again.
 */
export async function renewToken(
  client: StepCaClient,
  tls: TlsTrust | undefined,
  req: { kind: string; key: KeyObject | JwsSigner },
  chain: CertInfo[],
  afterMtls: boolean,
): Promise<Renewed> {
  const { key } = req;
  // step-ca answers an invalid audience with a 500 that names it: no use retrying that.
  const audience = (status: number, from: string, body: string) => {
    const msg = messageOf(body) ?? "";
    return status >= 500 && /renew token/.test(msg)
      ? new CaRefusedError(
          `${from} renewing ${req.kind} with a token: ${msg} (the token's audience is the CA URL node-join was given: its host must be one of step-ca's dnsNames)`,
        )
      : undefined;
  };
  const { answer, what } = await client.call({
    method: "POST",
    path: "/1.0/renew",
    authorization: async (base) =>
      `Bearer ${await signX5cToken({
        chainDer: chain.map((c) => c.der),
        key,
        chainHeader: "x5cInsecure",
        issuer: "step-ca-client/1.0",
        subject: chain[0]!.commonName,
        audience: `${base}/1.0/renew`,
        now: Math.floor(client.ctx.clock.now() / 1000),
        lifetimeS: RENEW_TOKEN_LIFETIME_S,
      })}`,
    tls,
    what: `renewing ${req.kind} with a token`,
    unauthorized: TOKEN_RENEWAL_REFUSED,
    special: audience,
  });
  const note = `renewed with a token signed by its key${afterMtls ? " as mTLS was refused" : ""}: the key is kept, step-ca has no token rekey`;
  return { chainPem: chainOf(answer, what), keptCurrentKey: true, note };
}

/** Renews `req` with its current certificate along cas.<ca>.renewAuth (CaBackend.renew). */
export async function renew(
  client: StepCaClient,
  connection: Connection,
  memory: RenewalMemory,
  req: RenewRequest,
): Promise<Renewed> {
  const chain = splitPemCertificates(req.currentCertPem, `current ${req.kind} certificate`).map(
    parseCert,
  );
  const current = chain[0]!;
  const description = client.servers.description;
  const renewAuthName = `--${client.prefix}ca-renew-auth (config cas.${client.ctx.ca.name}.renewAuth)`;
  const expiry = `${req.kind} expired on ${current.notAfter.toISOString()}`;
  const paths = renewalPaths(
    client.settings.renewAuth ?? "auto",
    req.expired,
    memory.mtlsRefusal !== undefined,
  );
  if (paths.length === 0)
    throw new RenewalRefusedError(
      description,
      `${expiry} and an expired certificate cannot authenticate the mTLS renewal (${renewAuthName} is mtls; auto or token renews it with a token where the provisioner allows renewal after expiry)`,
    );
  if (paths[0] === "mtls") {
    try {
      return await renewMtls(client, connection.tls, req, current);
    } catch (err) {
      if (!(err instanceof MtlsRefusedError)) throw err;
      if (paths.length === 1)
        throw new CaRefusedError(
          `${err.message}: a TLS-terminating proxy in front of step-ca? set ${renewAuthName} to token or auto to renew with a token signed by the current key`,
        );
      memory.mtlsRefusal = err.message;
      client.ctx.log(`${err.message}: renewing with a token signed by its key instead`);
    }
  }
  try {
    const key = createPrivateKey(req.currentKeyPem);
    return await renewToken(
      client,
      connection.tls,
      { kind: req.kind, key },
      chain,
      memory.mtlsRefusal !== undefined,
    );
  } catch (err) {
    // The CA's reason stays in its log; after expiry the provisioner's claim is the usual one.
    if (req.expired && err instanceof CaRefusedError && /HTTP 401/.test(err.message))
      throw new RenewalRefusedError(
        description,
        `${expiry} and the CA refused to renew it with a token signed by its key (HTTP 401): its provisioner does not allow renewal after expiry (claim allowRenewalAfterExpiry), or the certificate was revoked`,
      );
    throw err;
  }
}
