// X5C enrolment with the machine key in the TPM (identity: tpm; engine/tpm-x5c.ts holds the key):
// what the machine certificate is asked for, when it is renewed, and the TPM as the X5C token's
// signer. enrol.ts obtains and renews it; the tokens are x5c.ts's, signed in the TPM.
import type { PlannedRequest } from "../backend.js";
import type { CertTemplate } from "../../pki/certs.js";
import { spkiDer } from "../../pki/keys.js";
import { buildSignerCsr } from "../../pki/csr-signer.js";
import type { CertInfo } from "../../pki/x509.js";
import type { TpmX5cIdentity, X5cCredential } from "../secrets.js";
import type { JwsSigner } from "../x5c.js";

/**
 * The machine certificate's subject: the node name as CN and DNS SAN, what `step ca token
 * <node-name>` puts in the token's sub and sans (the JWK provisioner compares them with the CSR's).
 */
export function machineRequest(id: TpmX5cIdentity): PlannedRequest {
  const template: CertTemplate = {
    commonName: id.nodeName,
    organizations: [],
    sans: { dnsNames: [id.nodeName], ips: [] },
    usages: ["clientAuth"],
  };
  return { kind: "x5c-machine", template };
}

/** The CSR for the TPM's key, signed in the TPM (RFC 2986; tpm2_sign, DER ECDSA-Sig-Value). */
export async function machineCsr(id: TpmX5cIdentity): Promise<string> {
  const { template } = machineRequest(id);
  return buildSignerCsr({
    commonName: template.commonName,
    dnsNames: template.sans.dnsNames,
    spki: spkiDer(await id.publicKey()),
    sign: (data) => id.sign(data, "der"),
  });
}

/**
 * Renewed once two thirds of its life passed, as the kubelet's own certificates (client-go's
 * certificate manager renews at 70-90%): a machine certificate that expires stops enrolment.
 */
export function machineRenewalDue(leaf: CertInfo, now: number): boolean {
  const from = leaf.notBefore.getTime();
  return now >= from + ((leaf.notAfter.getTime() - from) * 2) / 3;
}

/** The TPM as a JWS signer: ES256, r‖s (RFC 7518 3.4). */
export const tpmSigner = (id: TpmX5cIdentity): JwsSigner => ({
  alg: "ES256",
  sign: (input) => id.sign(input, "jose"),
});

/** The machine certificate and the TPM signing with its key, as X5C enrolment takes them. */
export const tpmCredential = (id: TpmX5cIdentity, chain: CertInfo[]): X5cCredential => ({
  chain,
  key: tpmSigner(id),
  certFile: id.certFile,
});
