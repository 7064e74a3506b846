// A CFSSL auth key held in the TPM (cas.<ca>.identity: tpm): join imports the key file's key into
// the TPM as a keyed-hash object (tpm2_import -G hmac), keeps only the TPM-wrapped blob under the
// state directory, and deletes the file once the run succeeded; every token of that run and of
// every later one is HMAC-SHA256(key, request) computed in the TPM (cloudflare/cfssl auth/auth.go:
// the token is that HMAC over the request bytes). The key stays fleet-wide at the CA, but a copy
// of the node's disk no longer carries it: the blob loads only in the TPM that wrapped it.
import { join } from "node:path";
import { UsageError } from "../common/errors.js";
import type { CaSettings } from "../ca/index.js";
import type { CaSecrets } from "../ca/secrets.js";
import { CAS, type CaName } from "../pki/cas.js";
import { ensureDir, inspect, writeFileAtomic } from "../store/fsio.js";
import type { Layout } from "../store/layout.js";
import { readTrustedFile } from "../store/strict-modes.js";
import { encodeBlob, parseBlob } from "../tpm/blob.js";
import { createTpm, type Tpm, type TpmKeyBlob, type TpmKeyKind } from "../tpm/tpm.js";

/** The CA's auth key lives in the TPM once joined. */
export const authKeyInTpm = (c: CaSettings): boolean => c.type === "cfssl" && c.identity === "tpm";

/** The TPM-wrapped auth key of one CA: one file per CA (the CAs may share a key, or not). */
export const tpmAuthKeyFile = (l: Layout, ca: CaName): string =>
  join(l.stateDir, "tpm", `${ca}-ca-auth-key.json`);

/** A wrapped key this run made, written once it succeeded (writeTpmKeys). */
export interface TpmKeyWrite {
  ca: CaName;
  file: string;
  text: string;
  /** The auth key file it replaces, deleted once the blob is on disk. */
  replaces?: string;
  /** A token file whose one-time tokens this run spent (tpm-x5c.ts), deleted with it. */
  spentToken?: string;
  /** Default 0600; a certificate is 0644. */
  mode?: number;
  /**
   * Written by every run that succeeded, renew too (X5C in the TPM: tpm-x5c.ts, the machine
   * certificate renewed); else by join alone.
   */
  everyRun?: true;
}

/** A wrapped key join wrote: root's alone (0600, not others'), then parsed as untrusted input. */
export function readWrappedKey(file: string, kind: TpmKeyKind): TpmKeyBlob {
  const text = readTrustedFile(file, "TPM key file", "secret").toString("utf8");
  return parseBlob(text, file, kind);
}

/** The TPM of the run's settings, made when a CA first needs it. */
export function lazyTpm(tcti: string, make: (tcti: string) => Tpm = (t) => createTpm({ tcti: t })) {
  let tpm: Tpm | undefined;
  return (): Tpm => (tpm ??= make(tcti));
}

/**
 * The secrets `ca` signs with when its auth key lives in the TPM: the key file's (or variable's)
 * key imported into the TPM (and the blob to write), else the blob a join wrote; never the key in
 * memory. Other CAs' secrets are returned as they are.
 */
export async function withTpmAuthKey(
  ca: CaName,
  c: CaSettings,
  secrets: CaSecrets,
  tpm: () => Tpm,
  l: Layout,
): Promise<{ secrets: CaSecrets; write?: TpmKeyWrite }> {
  if (!authKeyInTpm(c) || c.type !== "cfssl") return { secrets };
  const file = tpmAuthKeyFile(l, ca);
  const { authKeyFile: given, ...rest } = secrets;
  let blob: TpmKeyBlob;
  let write: TpmKeyWrite | undefined;
  if (given) {
    blob = await tpm().importHmacKey(Buffer.from(given.value, "hex"));
    write = {
      ca,
      file,
      text: encodeBlob(blob, tpm().tcti),
      ...(c.authKeyFile && given.source === c.authKeyFile ? { replaces: c.authKeyFile } : {}),
    };
  } else if (inspect(file).kind !== "missing") {
    blob = readWrappedKey(file, "hmac-sha256");
  } else {
    const keyFile = c.authKeyFile ? `${c.authKeyFile} ` : "";
    throw new UsageError(
      `CA ${CAS[ca].display}: the auth key is neither in its file ${keyFile}nor in the TPM (no ${file}): put the auth key file back and run node-join join (cas.${ca}.identity: tpm imports it)`,
    );
  }
  const source = `the TPM (${tpm().tcti}; ${write ? "imported from " + given!.source : file})`;
  return {
    secrets: { ...rest, authMac: { source, mac: (data) => tpm().hmacSha256(blob, data) } },
    ...(write ? { write } : {}),
  };
}

/**
 * Once the run succeeded, still under the lock: each blob written (0600, atomically, in a 0700
 * directory), then the key file it replaces deleted. A crash in between leaves both: the next
 * join imports the file again. A dry run writes and deletes nothing.
 */
export function writeTpmKeys(
  writes: readonly TpmKeyWrite[],
  remove: (f: string) => void,
): { replaced: string[]; spentTokens: string[] } {
  for (const w of writes) {
    ensureDir(join(w.file, ".."), 0o700);
    writeFileAtomic(w.file, w.text, w.mode ?? 0o600);
  }
  const removed = (files: (string | undefined)[]) =>
    [...new Set(files.filter((f): f is string => f !== undefined))].filter((f) => {
      if (inspect(f).kind === "missing") return false;
      remove(f);
      return true;
    });
  return {
    replaced: removed(writes.map((w) => w.replaces)),
    spentTokens: removed(writes.map((w) => w.spentToken)),
  };
}
