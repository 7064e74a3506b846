// Secrets (CA auth keys, tokens, passwords) come from files or environment variables only, and
// their values never reach argv, logs, errors, JSON output or the persisted config. Every secret a
// run will use is read and checked once, before its first request to any CA (like sshd, which
// refuses a bad key file before it listens), so a missing, exposed or malformed one costs no
// network round trip and no one-time token.
import type { KeyObject } from "node:crypto";
import type { SecretFreeEnv } from "../common/builtins.js";
import { UsageError } from "../common/errors.js";
import type { CaDescriptor } from "../pki/cas.js";
import type { CertInfo } from "../pki/x509.js";
import { inspect } from "../store/fsio.js";
import { readTrustedFile } from "../store/strict-modes.js";
import type { CommonCaSettings } from "./backend.js";
import {
  basicAuthorization,
  checkProxyCredentials,
  parseProxyUrl,
  proxyCredentialsFromEnv,
  PROXY_URL_VARIABLES,
  withoutCredentials,
  type ProxyConfig,
  type ProxyRoute,
  type ProxySettings,
} from "./proxy.js";
import { caSettingName, missingFileError } from "./trust.js";
import type { JwsSigner } from "./x5c.js";

/** The environment variable holding a CA secret, e.g. NODE_JOIN_ETCD_CA_AUTH_KEY. */
export function secretEnvName(ca: CaDescriptor, secret: string): string {
  return `${ca.envPrefix}${secret}`;
}

/**
 * The setting naming a secret's file: a field of a backend's settings that its options declare
 * `secret` (options.ts), named <what>File.
 */
export type SecretSetting = `${string}File`;

/** One secret a CA type reads: where from, and what a valid value looks like. */
export interface SecretKind {
  setting: SecretSetting;
  /** In messages: "CA auth key file". */
  what: string;
  /** The flag without the CA's prefix: "ca-auth-key-file". */
  flag: string;
  /** The variable that may hold the value instead of the file; absent: a file only. */
  envName?: (ca: CaDescriptor) => string;
  /** Why `value` (read from `source`) is unusable; undefined: usable. */
  check?: (value: string, source: string) => string | undefined;
  /**
   * Only an enrolment needs it: a renewal that authenticates with the installed certificate reads
   * it if it is there (a fallback to enrolment may need it) and does not miss it otherwise (a
   * bootstrap secret is often removed once the node joined).
   */
  enrolmentOnly?: boolean;
  /**
   * A secret that renew.authKey: drop deletes after join: what a renewal that needs it says when
   * its file is gone (instead of the generic "does not exist"), given the file and its setting.
   */
  dropped?: (ca: CaDescriptor, settings: CommonCaSettings, file: string, name: string) => string;
}

export interface Secret {
  value: string;
  /** The file or the environment variable it came from: messages name it, never the value. */
  source: string;
}

/**
 * A machine certificate that enrols the node (step-ca's X5C provisioner), checked before the run's
 * first request: its key matches, it is valid now, its file holds a chain (stepca/x5c.ts).
 */
export interface X5cCredential {
  /** The machine certificate, then the intermediates its file holds, each issuing the last. */
  chain: CertInfo[];
  /** The machine key, or, identity: tpm, the TPM signing with it. */
  key: KeyObject | JwsSigner;
  /** The certificate's file, for messages. */
  certFile: string;
}

/**
 * step-ca X5C enrolment with the machine key in the TPM (identity: tpm, engine/tpm-x5c.ts): the
 * key never leaves it; its machine certificate is obtained once with a one-time JWK token, then
 * signs every X5C token.
 */
export interface TpmX5cIdentity {
  /** "the TPM swtpm:...": messages name it. */
  source: string;
  /** The machine certificate's subject: CN and DNS SAN the node name (`step ca token <name>`). */
  nodeName: string;
  /** The TPM key's public key (from its wrapped blob: the TPM is not asked). */
  publicKey(): Promise<KeyObject>;
  /** SHA-256 then ECDSA in the TPM: DER (a CSR's signature) or r‖s (ES256). */
  sign(data: Uint8Array, format: "der" | "jose"): Promise<Buffer>;
  /** The machine certificate and its chain, leaf first, once obtained. */
  chain?: CertInfo[];
  /** Where it is kept, for messages. */
  certFile: string;
  /** The machine certificate obtained or renewed in this run: kept once the run succeeded. */
  /**
   * spentTokenFile: the token file whose every token this run spent (one-time tokens, RFC 7519
   * jti: step-ca refuses them again), deleted once the run succeeded: a copy of the disk carries
   * nothing that enrols.
   */
  obtained(chainPem: string, chain: CertInfo[], spentTokenFile?: string): void;
}

/**
 * A MAC computed where the key cannot be read: CFSSL's auth key in the TPM (engine/tpm-keys.ts).
 * `source` names where it is, for messages.
 */
export interface KeyedMac {
  source: string;
  mac(data: Uint8Array): Promise<Buffer>;
}

export type CaSecrets = Partial<Record<SecretSetting, Secret>> & {
  /** CFSSL's auth key held in the TPM: its tokens are computed there, the key never read. */
  authMac?: KeyedMac;
  x5c?: X5cCredential;
  /** step-ca X5C with the machine key in the TPM (identity: tpm). */
  x5cTpm?: TpmX5cIdentity;
  /**
   * A renewal's machine certificate that could not enrol (expired, ...): a renewal with the
   * installed certificate does not need it, a fallback to enrolment reports this.
   */
  x5cUnusable?: string;
};

export interface SecretSpec {
  what: string;
  file?: string;
  /** Absent: a file only. */
  envName?: string;
  env: NodeJS.ProcessEnv;
}

/**
 * The secret's value from its environment variable (wins when set) or its file; undefined if
 * neither.
 */
export function readSecret(spec: SecretSpec): string | undefined {
  const fromEnv = spec.envName === undefined ? undefined : spec.env[spec.envName];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv.trim();
  if (!spec.file) return undefined;
  // Refused when group or others may read or write it, or (as root) another user owns it: the key
  // would leak to them, or be theirs to choose. Checked on the descriptor it is read from.
  return readTrustedFile(spec.file, spec.what, "secret").toString("utf8").trim();
}

/** The file a secret's setting names (a backend's settings hold each as a path, or nothing). */
export function settingFile(
  settings: CommonCaSettings,
  setting: SecretSetting,
): string | undefined {
  const v: unknown = (settings as unknown as Record<string, unknown>)[setting];
  return typeof v === "string" ? v : undefined;
}

export interface ReadSecretsOptions {
  /** A renewal: secrets only an enrolment needs may be missing. */
  renewal: boolean;
  /** renew.authKey: drop: join deleted the droppable secrets (SecretKind.dropped). */
  authKeyDropped?: boolean;
}

/**
 * Reads and checks every secret of one CA that is configured (file or environment variable):
 * present, a regular file owned and readable as secrets must be (strict-modes.ts), not empty, and
 * in its format. Exit 2 naming the file and the flag that gave it.
 */
export function readCaSecrets(
  ca: CaDescriptor,
  settings: CommonCaSettings,
  kinds: readonly SecretKind[],
  env: NodeJS.ProcessEnv,
  o: ReadSecretsOptions,
): CaSecrets {
  const out: CaSecrets = {};
  for (const k of kinds) {
    const envName = k.envName?.(ca);
    const file = settingFile(settings, k.setting);
    const fromEnv = envName !== undefined && env[envName] !== undefined && env[envName] !== "";
    if (!fromEnv && !file) continue;
    const source = fromEnv ? envName : file!;
    const name = caSettingName(ca, k.flag, k.setting);
    if (!fromEnv && inspect(file!).kind === "missing") {
      if (o.renewal && k.enrolmentOnly) continue;
      if (o.authKeyDropped && k.dropped) {
        // renew knows before it reaches a CA whether it must sign: it says so now. join reaches
        // every CA first (its anchors come from the servers), so the backend says it only when a
        // certificate of that CA is due (cfssl.ts sign).
        if (o.renewal) throw new UsageError(k.dropped(ca, settings, file!, name));
        continue;
      }
      throw missingFileError(ca, k.what, file!, name);
    }
    const value = readSecret({ what: k.what, file, ...(envName ? { envName } : {}), env })!;
    const why = value === "" ? "is empty" : k.check?.(value, source);
    if (why) {
      throw new UsageError(
        `CA ${ca.display}: ${fromEnv ? envName : `${k.what} ${file} (${name})`} ${why}`,
      );
    }
    out[k.setting] = { value, source };
  }
  return out;
}

/** The variable holding the proxy's user:password (wins over proxy.credentialsFile). */
export const PROXY_CREDENTIALS_ENV = "NODE_JOIN_PROXY_CREDENTIALS";

/**
 * `env` for another program (a hook): without the variables a secret is read from (`names`: the
 * registry's, ca/index.ts withoutSecrets), nor any NODE_JOIN_ variable named like one (`suffixes`,
 * so that whatever name a later CA type reads a secret under is not passed on either), and with the
 * proxy URLs stripped of their user:password (the proxy itself is kept: the program's own tools may
 * need it).
 */
export function envWithoutSecrets(
  env: NodeJS.ProcessEnv,
  names: readonly string[],
  suffixes: readonly string[],
): SecretFreeEnv {
  const secrets = new Set(names);
  const like = new RegExp(`^NODE_JOIN_(?:\\w*_)?(${suffixes.join("|")})$`);
  const proxies = new Set(PROXY_URL_VARIABLES);
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env)) {
    if (secrets.has(name) || like.test(name)) continue;
    out[name] = proxies.has(name) && value !== undefined ? withoutCredentials(value) : value;
  }
  // The one place that makes a SecretFreeEnv: what it promises is what this function did.
  return out as SecretFreeEnv;
}

const PROXY_CREDENTIALS_NAME = "--proxy-credentials-file, config proxy.credentialsFile";

/**
 * The proxies of a run with their credentials, read and checked with the CAs' secrets, before the
 * first request: NODE_JOIN_PROXY_CREDENTIALS, else the credentials file (a secret file, as the
 * auth keys), else the user:password of the standard variable that named the proxy (accepted as
 * curl accepts it). Undefined when no proxy is set.
 */
export function readProxyConfig(s: ProxySettings, env: NodeJS.ProcessEnv): ProxyConfig | undefined {
  if (s.unusable) throw new UsageError(s.unusable);
  if (!s.https && !s.http) return undefined;
  const file = s.credentialsFile;
  const fromEnv = env[PROXY_CREDENTIALS_ENV] !== undefined && env[PROXY_CREDENTIALS_ENV] !== "";
  let explicit: Secret | undefined;
  if (fromEnv || file) {
    if (!fromEnv && inspect(file!).kind === "missing") {
      throw new UsageError(
        `proxy credentials file ${file} does not exist (${PROXY_CREDENTIALS_NAME})`,
      );
    }
    const what = "proxy credentials file";
    const value = readSecret({ what, file, envName: PROXY_CREDENTIALS_ENV, env })!;
    const why = value === "" ? "is empty" : checkProxyCredentials(value);
    if (why) {
      throw new UsageError(
        `${fromEnv ? PROXY_CREDENTIALS_ENV : `${what} ${file} (${PROXY_CREDENTIALS_NAME})`} ${why}`,
      );
    }
    explicit = { value, source: fromEnv ? PROXY_CREDENTIALS_ENV : file! };
  }
  const route = (key: "proxy.https" | "proxy.http", url: string | undefined) => {
    if (!url) return undefined;
    const p = parseProxyUrl(url);
    // The options table checked it; a string here cannot happen.
    if (typeof p === "string") throw new UsageError(`config key ${key}: ${p}`);
    const r: ProxyRoute = { url: p.url, host: p.host, port: p.port };
    const colon = explicit?.value.indexOf(":") ?? -1;
    const creds = explicit
      ? {
          user: explicit.value.slice(0, colon),
          password: explicit.value.slice(colon + 1),
          source: explicit.source,
        }
      : proxyCredentialsFromEnv(env, key, p.url);
    if (creds) {
      r.authorization = basicAuthorization(creds.user, creds.password);
      r.credentialsSource = creds.source;
    }
    return r;
  };
  const https = route("proxy.https", s.https);
  const http = route("proxy.http", s.http);
  return { ...(https ? { https } : {}), ...(http ? { http } : {}), noProxy: s.noProxy };
}
