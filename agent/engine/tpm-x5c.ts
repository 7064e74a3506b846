// step-ca X5C enrolment with the machine key in the TPM (cas.<ca>.identity: tpm on a step-ca CA):
// join creates an ECDSA P-256 key inside the TPM (tpm/tpm.ts createSigningKey: fixedTPM, never
// exported) and keeps only its TPM-wrapped blob under the state directory; the step-ca backend
// obtains the key's machine certificate once with a one-time JWK token (the CSR signed in the
// TPM), then signs every X5C token in the TPM (ca/stepca/enrol.ts). The certificate is public and
// kept beside the blob. Both are written once the run succeeded, like the CFSSL auth key
// (tpm-keys.ts); a copy of the disk carries them, but the blob loads only in the TPM that made it.
import { join } from "node:path";
import { UsageError } from "../common/errors.js";
import type { CaSettings } from "../ca/index.js";
import type { CaSecrets, TpmX5cIdentity } from "../ca/secrets.js";
import { CAS, type CaName } from "../pki/cas.js";
import { spkiDer } from "../pki/keys.js";
import { parseCert, splitPemCertificates, type CertInfo } from "../pki/x509.js";
import { inspect } from "../store/fsio.js";
import type { Layout } from "../store/layout.js";
import { readTrustedFile } from "../store/strict-modes.js";
import { encodeBlob } from "../tpm/blob.js";
import { TpmForeignKeyError } from "../tpm/tools.js";
import type { Tpm, TpmKeyBlob } from "../tpm/tpm.js";
import { readWrappedKey, type TpmKeyWrite } from "./tpm-keys.js";

/** The CA enrols with an X5C machine key in the TPM. */
export const x5cInTpm = (c: CaSettings): boolean => c.type === "step-ca" && c.identity === "tpm";

/** The TPM-wrapped machine key of one CA, and its machine certificate (leaf, then chain). */
export const tpmX5cFiles = (l: Layout, ca: CaName): { key: string; cert: string } => ({
  key: join(l.stateDir, "tpm", `${ca}-x5c-key.json`),
  cert: join(l.stateDir, "tpm", `${ca}-x5c-machine.crt`),
});

const CERT_WHAT = "X5C machine certificate file";

/** The machine certificate kept beside the blob, checked to be the blob's key's. */
function readMachineCert(file: string, spki: Buffer, ca: CaName): CertInfo[] | undefined {
  if (inspect(file).kind === "missing") return undefined;
  const text = readTrustedFile(file, CERT_WHAT, "config").toString("utf8");
  const fix = `remove it and join again with a one-time token for the machine certificate`;
  let chain: CertInfo[];
  try {
    chain = splitPemCertificates(text, file).map(parseCert);
  } catch (err) {
    throw new UsageError(
      `CA ${CAS[ca].display}: ${CERT_WHAT} ${file}: ${(err as Error).message}: ${fix}`,
    );
  }
  if (!chain[0]!.spki.equals(spki))
    throw new UsageError(
      `CA ${CAS[ca].display}: ${CERT_WHAT} ${file} is not the certificate of the machine key in the TPM: ${fix}`,
    );
  return chain;
}

/**
 * The secrets of `ca` with its TPM machine identity (x5cTpm), before any request: the key the
 * blob holds, or, on join, a new one made in the TPM now; and what to write once the run
 * succeeded (the new blob, a machine certificate obtained or renewed). A renewal without the blob
 * is refused: only a join makes the identity.
 */
export async function withTpmX5c(
  ca: CaName,
  c: CaSettings,
  secrets: CaSecrets,
  tpm: () => Tpm,
  l: Layout,
  o: { nodeName: string; renewal: boolean },
): Promise<{ secrets: CaSecrets; writes?: () => TpmKeyWrite[] }> {
  if (!x5cInTpm(c)) return { secrets };
  const files = tpmX5cFiles(l, ca);
  let blob: TpmKeyBlob;
  const writes: TpmKeyWrite[] = [];
  if (inspect(files.key).kind !== "missing") {
    blob = readWrappedKey(files.key, "ecc-p256");
  } else if (o.renewal) {
    throw new UsageError(
      `CA ${CAS[ca].display}: the X5C machine key is not in the TPM (no ${files.key}): run node-join join with a one-time token for the machine certificate (cas.${ca}.identity: tpm creates the key)`,
    );
  } else {
    blob = await tpm().createSigningKey();
    writes.push({ ca, file: files.key, text: encodeBlob(blob, tpm().tcti), everyRun: true });
  }
  // tpm2_print decodes the blob's TPM2B_PUBLIC locally: no TPM command yet.
  const publicKey = await tpm().publicKey(blob);
  const chain = readMachineCert(files.cert, spkiDer(publicKey), ca);
  const identity: TpmX5cIdentity = {
    source: `the TPM (${tpm().tcti})`,
    nodeName: o.nodeName,
    publicKey: async () => publicKey,
    // A copied disk's machine key cannot come back: only a new key in this TPM and a new machine
    // certificate for it (a join finds the old blob and would try it again).
    sign: (data, format) =>
      tpm()
        .sign(blob, data, format)
        .catch((err: unknown) => {
          if (!(err instanceof TpmForeignKeyError)) throw err;
          const fix = `remove ${files.key} and ${files.cert}, then join with a new one-time token`;
          throw new TpmForeignKeyError(err.tpm, fix);
        }),
    ...(chain ? { chain } : {}),
    certFile: files.cert,
    obtained: (chainPem, obtained, spentTokenFile) => {
      identity.chain = obtained;
      const write: TpmKeyWrite = {
        ca,
        file: files.cert,
        text: chainPem,
        mode: 0o644,
        everyRun: true,
      };
      if (spentTokenFile) write.spentToken = spentTokenFile;
      const at = writes.findIndex((w) => w.file === files.cert);
      if (at >= 0) writes[at] = write;
      else writes.push(write);
    },
  };
  return { secrets: { ...secrets, x5cTpm: identity }, writes: () => [...writes] };
}
