// Secrets (CA auth keys, tokens, passwords) come from files or environment variables only, and
// their values never reach argv, logs, errors, JSON output or the persisted config.
import type { CaDescriptor } from "../pki/cas.js";
import { readTrustedFile } from "../store/strict-modes.js";

/** The environment variable holding a CA secret, e.g. NODE_JOIN_ETCD_CA_AUTH_KEY. */
export function secretEnvName(ca: CaDescriptor, secret: string): string {
  return `${ca.envPrefix}${secret}`;
}

export interface SecretSpec {
  what: string;
  file?: string;
  envName: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The secret's value from its environment variable (wins when set) or its file; undefined if
 * neither.
 */
export function readSecret(spec: SecretSpec): string | undefined {
  const fromEnv = spec.env[spec.envName];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv.trim();
  if (!spec.file) return undefined;
  // Refused when group or others may read or write it, or (as root) another user owns it: the key
  // would leak to them, or be theirs to choose. Checked on the descriptor it is read from.
  return readTrustedFile(spec.file, spec.what, "secret").toString("utf8").trim();
}
