// Where a node's enrolment identity lives (status, the metrics): in secret files a copy of the
// disk carries, or only in TPM-wrapped keys (tpm-keys.ts: CFSSL's auth key; tpm-x5c.ts: step-ca's
// X5C machine key), which load in this node's TPM alone.
import { secretFiles, type CaSettings } from "../ca/index.js";
import { casFor, type CaName } from "../pki/cas.js";
import type { Role } from "../pki/roles.js";
import { inspect } from "../store/fsio.js";
import type { Layout } from "../store/layout.js";
import { authKeyInTpm, tpmAuthKeyFile } from "./tpm-keys.js";
import { tpmX5cFiles, x5cInTpm } from "./tpm-x5c.js";

/** Where the node's enrolment identity lives, and what a copy of its disk would carry. */
export interface IdentityStatus {
  /**
   * "file": a secret that enrols or signs at a CA is a file (a copy of the disk carries it);
   * "tpm": only TPM-wrapped keys (useless off this TPM); "none": neither (the node renews with its
   * certificates alone, or must be handed a secret to enrol again).
   */
  where: "tpm" | "file" | "none";
  /** The secret files on disk a copy would carry (the kubelet's own keys aside), host paths. */
  secretFiles: string[];
  /** The TPM-wrapped keys on disk, host paths. */
  tpmKeys: string[];
}

/** The TPM-wrapped keys a CA's settings keep under the state directory: its identity in the TPM. */
function tpmBlobFiles(c: CaSettings, l: Layout, ca: CaName): string[] {
  if (authKeyInTpm(c)) return [tpmAuthKeyFile(l, ca)];
  if (x5cInTpm(c)) return [tpmX5cFiles(l, ca).key];
  return [];
}

/**
 * The identity of a node with these CA settings, as its disk holds it now: each secret file the
 * settings name that is there (secretFiles: auth keys, tokens, passwords, X5C keys), and each
 * TPM-wrapped key join wrote.
 */
export function identityStatus(
  role: Role,
  cas: Readonly<Record<CaName, CaSettings>>,
  l: Layout,
  shown: (path: string) => string,
): IdentityStatus {
  const present = (f: string) => inspect(f).kind !== "missing";
  const mine = casFor(role).map((ca) => ({ name: ca.name, settings: cas[ca.name] }));
  const files = mine.flatMap((c) => secretFiles(c.settings).map((f) => f.file)).filter(present);
  const blobs = mine.flatMap((c) => tpmBlobFiles(c.settings, l, c.name)).filter(present);
  const unique = (fs: string[]) => [...new Set(fs)].map(shown);
  const where = files.length ? "file" : blobs.length ? "tpm" : "none";
  return { where, secretFiles: unique(files), tpmKeys: unique(blobs) };
}

/**
 * The settings whose secrets are read for a CA: a secret join deleted once the TPM held the
 * identity is not missing. A CFSSL auth key is in the TPM; a step-ca token file whose one-time
 * tokens the machine certificate spent is gone for good (the TPM's key enrols from then on, and a
 * node without a machine certificate is told to give a token: stepca/enrol.ts).
 */
export function settingsForSecrets(c: CaSettings): CaSettings {
  const gone = (f: string | undefined) => f !== undefined && inspect(f).kind === "missing";
  if (authKeyInTpm(c) && c.type === "cfssl" && gone(c.authKeyFile)) {
    const { authKeyFile: _inTpm, ...rest } = c;
    return rest;
  }
  if (x5cInTpm(c) && c.type === "step-ca" && gone(c.tokenFile)) {
    const { tokenFile: _spent, ...rest } = c;
    return rest;
  }
  return c;
}
