// smallstep step-ca (smallstep/certificates ca/, api/, authority/provisioner/jwk.go; 0.19 tested):
// the root by fingerprint from /root/<fp>, enrolment at /1.0/sign with a one-time JWK token per
// certificate (given, or minted here from the provisioner's encrypted key) or an x5c token signed
// with the node's machine certificate (X5C provisioner, x5c.ts), renewal over mTLS with the
// current certificate at /1.0/rekey (fresh key) or /1.0/renew (same key), or with a token signed
// by the current key at /1.0/renew (the same key: through a TLS-terminating proxy, after expiry).
// client.ts reaches the CA and returns the Connection; enrol.ts, renew.ts and revoke.ts are handed
// it. Which of renewal or enrolment a certificate needs is the engine's decision.
import type { BackendContext, CaBackend } from "../backend.js";
import type { StepCaSettings } from "../stepca-settings.js";
import { connect, createClient, type Connection } from "./client.js";
import { cannotEnrol, createEnrolment, prepare, sign, type Enrolment } from "./enrol.js";
import { renew, type RenewalMemory } from "./renew.js";
import { revoke } from "./revoke.js";

export { probeStepCa } from "./client.js";
export { STEPCA_SECRETS } from "./enrol.js";
export { stepCaRenewalPath } from "./renew.js";
export { stepCaRequestedSans } from "./sans.js";
export { checkX5cSettings, withX5cCredential } from "./x5c.js";

interface Session {
  connection: Connection;
  enrolment: Enrolment;
  memory: RenewalMemory;
}

export function createStepCaBackend(ctx: BackendContext<StepCaSettings>): CaBackend {
  const client = createClient(ctx);
  // Set by fetchCaBundle: every other call is made with what it established.
  let session: Session | undefined;
  const connected = (): Session => {
    if (!session) throw new Error("step-ca backend: fetchCaBundle must run first");
    return session;
  };
  return {
    get description() {
      return client.servers.description;
    },
    answered: () => client.servers.answered(),
    lastDate: () => client.lastDate(),
    async fetchCaBundle() {
      const connection = await connect(client);
      session = { connection, enrolment: createEnrolment(client, connection), memory: {} };
      return connection.anchors;
    },
    offered: () => session?.connection.offered ?? [],
    currentSigner: () => session?.connection.signer,
    prepare: async (reqs) => prepare(connected().enrolment, reqs),
    sign: async (req) => sign(connected().enrolment, req),
    cannotEnrol: (req, why) => cannotEnrol(connected().enrolment, req, why),
    renew: async (req) => {
      const { connection, memory, enrolment } = connected();
      // identity: tpm: the machine key in the TPM enrols the certificate anew (X5C), so the CA's
      // operator may set disableRenewal on that provisioner: a stolen kubelet key cannot renew.
      if (ctx.secrets.x5cTpm)
        return {
          chainPem: await sign(enrolment, req),
          keptCurrentKey: false,
          note: "enrolled again with an X5C token signed in the TPM",
        };
      return renew(client, connection, memory, req);
    },
    revoke: async (req) => revoke(client, connected().connection, req),
    revokesWithKey: true,
  };
}
