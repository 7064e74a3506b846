// Secrets (CA auth keys, tokens, passwords) come from files or environment variables only, and
// their values never reach argv, logs, errors, JSON output or the persisted config.
import { readFileSync, statSync } from "node:fs";
import { ioError, UsageError } from "../common/errors.js";
import type { CaDescriptor } from "../pki/cas.js";

/** The environment variable holding a CA secret, e.g. NODE_JOIN_ETCD_CA_AUTH_KEY. */
export function secretEnvName(ca: CaDescriptor, secret: string): string {
  return `${ca.envPrefix}${secret}`;
}

/** Refuses a secret file that group or others may read: the key would leak to every local user. */
export function checkSecretFileMode(file: string, what: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (err) {
    throw ioError(`read ${what}`, file, err);
  }
  if ((mode & 0o077) !== 0) {
    throw new UsageError(
      `${what} ${file} is readable by group or others (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); fix with: chmod 600 ${file}`,
    );
  }
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
  checkSecretFileMode(spec.file, spec.what);
  try {
    return readFileSync(spec.file, "utf8").trim();
  } catch (err) {
    throw ioError(`read ${spec.what}`, spec.file, err);
  }
}
