// One table of settings drives the flags, the NODE_JOIN_* environment variables, the config file
// keys, validation and what is persisted. Precedence: flags > environment > file > defaults.
import { isAbsolute, join, relative, resolve } from "node:path";
import { ipFamily } from "../common/ip.js";
import YAML from "yaml";
import { CA_NAMES, ROLES, firstServiceIp, type CaName } from "../pki/certs.js";
import { UsageError } from "../common/errors.js";
import { KEY_ALGORITHMS, type KeyAlgorithm } from "../pki/keys.js";
import type { CaSettings, Settings } from "./settings.js";
import { isPin } from "../pki/x509.js";

export type OptionType = "string" | "list" | "bool" | "duration" | "int" | "argvs";
type Value = string | string[] | boolean | number | string[][];

export interface OptionSpec {
  /** Dotted key in the config file. */
  key: string;
  /** Long flag without dashes; also gives the environment variable NODE_JOIN_<FLAG>. */
  flag?: string;
  type: OptionType;
  valueName?: string;
  description: string;
  choices?: readonly string[];
  /** A file path: resolved to absolute, and persisted relative to --root when it lies under it. */
  path?: boolean;
  check?: (value: Value) => string | undefined;
  /** The command whose flag this is (default: join). */
  command?: "join" | "renew";
}

export const CA_FLAG_PREFIX: Record<CaName, string> = { kubernetes: "", frontProxy: "front-proxy-", etcd: "etcd-" };
/** The CA backends (agent/ca/index.ts registers one per type; a unit test keeps the two lists equal). */
export const CA_TYPES = ["cfssl", "step-ca"] as const;

const CA_TITLE: Record<CaName, string> = { kubernetes: "kubernetes CA", frontProxy: "front-proxy CA", etcd: "etcd CA" };

const checkUrl = (schemes: string[]) => (v: Value): string | undefined => {
  try {
    const u = new URL(String(v));
    if (!schemes.includes(u.protocol.replace(":", ""))) return `must be a ${schemes.join(" or ")} URL`;
    if (u.username || u.password) return "must not carry credentials";
    return undefined;
  } catch {
    return "is not a URL";
  }
};
const checkPins = (v: Value): string | undefined => {
  const bad = (v as string[]).find((p) => !isPin(p));
  return bad === undefined ? undefined : `"${bad}" is not sha256:<64 lower-case hex digits>`;
};
const checkFingerprint = (v: Value): string | undefined =>
  /^[0-9a-fA-F]{64}$/.test(String(v)) ? undefined : "is not a SHA-256 fingerprint (64 hex digits)";
const checkIps = (v: Value): string | undefined => {
  const bad = (v as string[]).find((ip) => !ipFamily(ip));
  return bad === undefined ? undefined : `"${bad}" is not an IP address`;
};
const checkDnsNames = (v: Value): string | undefined => {
  const bad = (v as string[]).find((d) => !DNS_NAME.test(d));
  return bad === undefined ? undefined : `"${bad}" is not a DNS name`;
};
const DNS_NAME = /^(?=.{1,253}$)(\*\.)?[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function caOptions(ca: CaName): OptionSpec[] {
  const p = CA_FLAG_PREFIX[ca];
  const title = CA_TITLE[ca];
  const k = `cas.${ca}`;
  return [
    { key: `${k}.type`, flag: `${p}ca-type`, type: "string", valueName: "type", choices: CA_TYPES, description: `${title}: backend type (cfssl, step-ca)` },
    { key: `${k}.url`, flag: `${p}ca-url`, type: "string", valueName: "url", description: `${title}: URL of the CA server`, check: checkUrl(["http", "https"]) },
    { key: `${k}.label`, flag: `${p}ca-label`, type: "string", valueName: "label", description: `${title}: CFSSL signer label` },
    { key: `${k}.certHashes`, flag: `${p}ca-cert-hash`, type: "list", valueName: "sha256:hex", description: `${title}: SPKI pin of the CA certificate (repeatable)`, check: checkPins },
    { key: `${k}.caFile`, flag: `${p}ca-file`, type: "string", valueName: "pem", path: true, description: `${title}: trust this CA certificate file instead of a pin` },
    { key: `${k}.tlsCaFile`, flag: `${p}ca-tls-file`, type: "string", valueName: "pem", path: true, description: `${title}: trust bundle for the CA server's TLS certificate (default: the pinned CA)` },
    { key: `${k}.authKeyFile`, flag: `${p}ca-auth-key-file`, type: "string", valueName: "file", path: true, description: `${title}: file holding the hex auth key (mode 0600)` },
    { key: `${k}.fingerprint`, flag: `${p}ca-fingerprint`, type: "string", valueName: "hex", description: `${title}: step-ca root fingerprint (sha256 of the root certificate, as step ca bootstrap takes it)`, check: checkFingerprint },
    { key: `${k}.provisioner`, flag: `${p}ca-provisioner`, type: "string", valueName: "name", description: `${title}: step-ca JWK provisioner node-join mints its tokens for (with the password file)` },
    { key: `${k}.passwordFile`, flag: `${p}ca-password-file`, type: "string", valueName: "file", path: true, description: `${title}: file holding the step-ca provisioner password (mode 0600)` },
    { key: `${k}.tokenFile`, flag: `${p}ca-token-file`, type: "string", valueName: "file", path: true, description: `${title}: file of step-ca one-time tokens, one per certificate and line (mode 0600)` },
    { key: `${k}.clientProfile`, flag: `${p}client-profile`, type: "string", valueName: "profile", description: `${title}: signing profile for client certificates` },
    { key: `${k}.servingProfile`, flag: `${p}serving-profile`, type: "string", valueName: "profile", description: `${title}: signing profile for serving certificates` },
    { key: `${k}.peerProfile`, flag: `${p}peer-profile`, type: "string", valueName: "profile", description: `${title}: signing profile for server+client certificates (etcd; default: serving profile)` },
  ];
}

export const OPTIONS: readonly OptionSpec[] = [
  { key: "role", flag: "role", type: "string", valueName: "role", choices: ROLES, description: "worker or control-plane" },
  { key: "apiServer", flag: "api-server", type: "string", valueName: "url", description: "API server URL (controlPlaneEndpoint) written to kubelet.conf", check: checkUrl(["https"]) },
  { key: "nodeName", flag: "node-name", type: "string", valueName: "name", description: "node name (default: short hostname, lower-cased)", check: (v) => (NODE_NAME.test(String(v)) ? undefined : "is not a valid node name (lower-case DNS subdomain)") },
  { key: "ips", flag: "ip", type: "list", valueName: "addr", description: "node IP for the serving certificate (repeatable; replaces discovery)", check: checkIps },
  { key: "dnsNames", flag: "dns-name", type: "list", valueName: "name", description: "extra DNS name for the serving certificate (repeatable)", check: checkDnsNames },
  { key: "interface", flag: "interface", type: "string", valueName: "name", description: "take node IPs from this interface only" },
  { key: "keyAlgorithm", flag: "key-algorithm", type: "string", valueName: "alg", choices: KEY_ALGORITHMS, description: "private key algorithm" },
  { key: "timeout", flag: "timeout", type: "duration", valueName: "duration", description: "give up on an unreachable CA after this long (default 5m)" },
  { key: "unsafeSkipCaVerification", flag: "unsafe-skip-ca-verification", type: "bool", description: "trust whatever CA certificate the server sends (prints a warning)" },
  ...CA_NAMES.flatMap(caOptions),
  { key: "controlPlane.advertiseAddress", flag: "advertise-address", type: "string", valueName: "ip", description: "control plane: this node's API server / etcd address (default: first node IP)", check: (v) => (ipFamily(String(v)) ? undefined : "is not an IP address") },
  { key: "controlPlane.bindPort", flag: "bind-port", type: "int", valueName: "port", description: "control plane: local API server port (default 6443)", check: (v) => ((v as number) > 0 && (v as number) < 65536 ? undefined : "is not a port number") },
  { key: "controlPlane.endpoint", flag: "control-plane-endpoint", type: "string", valueName: "host:port", description: "control plane: shared endpoint (default: host:port of --api-server)" },
  { key: "controlPlane.serviceCidr", flag: "service-cidr", type: "string", valueName: "cidr", description: "control plane: service CIDR (default 10.96.0.0/12)", check: (v) => { try { firstServiceIp(String(v)); return undefined; } catch { return "is not a CIDR"; } } },
  { key: "controlPlane.dnsDomain", flag: "dns-domain", type: "string", valueName: "domain", description: "control plane: cluster DNS domain (default cluster.local)", check: (v) => checkDnsNames([String(v)]) },
  { key: "controlPlane.apiServerCertSans", flag: "apiserver-cert-san", type: "list", valueName: "name", description: "control plane: extra apiserver SAN (repeatable)" },
  { key: "controlPlane.etcdServerCertSans", flag: "etcd-server-cert-san", type: "list", valueName: "name", description: "control plane: extra etcd server SAN (repeatable)" },
  { key: "controlPlane.etcdPeerCertSans", flag: "etcd-peer-cert-san", type: "list", valueName: "name", description: "control plane: extra etcd peer SAN (repeatable)" },
  { key: "controlPlane.serviceAccountKeyFile", flag: "sa-key-file", type: "string", valueName: "file", path: true, description: "control plane: the cluster's shared sa.key (default /etc/node-join/sa.key)" },
  { key: "controlPlane.serviceAccountPublicKeyFile", flag: "sa-pub-file", type: "string", valueName: "file", path: true, description: "control plane: the cluster's shared sa.pub (default /etc/node-join/sa.pub)" },
  { key: "renew.before", flag: "before", command: "renew", type: "duration", valueName: "duration", description: "renew when less than this remains (default: kubelet rule, 70-90% of the lifetime)" },
  { key: "renew.reuseKey", type: "bool", description: "keep the private key on renewal (default: a fresh key every time)" },
  { key: "hooks.postRenew", type: "argvs", description: "commands (argv arrays, no shell) run after a renewal; [] switches them off" },
  { key: "timer.enabled", type: "bool", description: "join installs the renewal timer (default true; --no-timer)" },
  { key: "metrics.textfile", type: "string", path: true, description: "Prometheus textfile (default /var/lib/node_exporter/textfile_collector/node_join.prom)" },
];

const BY_KEY = new Map(OPTIONS.map((o) => [o.key, o]));

export function envName(flag: string): string {
  return `NODE_JOIN_${flag.toUpperCase().replace(/-/g, "_")}`;
}

export function parseDuration(text: string): number | undefined {
  const m = /^\s*((?:\d+(?:\.\d+)?(?:ms|s|m|h|d)\s*)+)$/.exec(text);
  if (!m) return undefined;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  for (const part of m[1]!.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(part[1]) * unit[part[2]!]!;
  return Math.round(total);
}

/** Converts a raw value from a file, the environment or a flag to the option's type, or says why not. */
function coerce(spec: OptionSpec, raw: unknown, from: "file" | "env" | "flag"): Value {
  const where = from === "file" ? `config key ${spec.key}` : from === "env" ? `environment variable ${envName(spec.flag!)}` : `--${spec.flag}`;
  const bad = (why: string): never => {
    throw new UsageError(`${where}: ${why}`);
  };
  let value: Value;
  switch (spec.type) {
    case "string":
      if (typeof raw !== "string" || raw === "") bad("must be a non-empty string");
      value = raw as string;
      break;
    case "list": {
      const list = typeof raw === "string" && from !== "file" ? raw.split(",").map((s) => s.trim()).filter(Boolean) : raw;
      if (!Array.isArray(list) || list.some((x) => typeof x !== "string")) bad("must be a list of strings");
      value = list as string[];
      break;
    }
    case "bool":
      if (typeof raw === "boolean") value = raw;
      else if (from !== "file" && typeof raw === "string" && /^(true|false|1|0)$/.test(raw)) value = raw === "true" || raw === "1";
      else value = bad("must be true or false");
      break;
    case "int": {
      const n = typeof raw === "number" ? raw : from !== "file" && typeof raw === "string" && /^\d+$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(n)) bad("must be an integer");
      value = n;
      break;
    }
    case "duration": {
      const ms = typeof raw === "string" ? parseDuration(raw) : undefined;
      if (ms === undefined) bad(`must be a duration such as 90s, 5m or 2h (got ${JSON.stringify(raw)})`);
      value = raw as string;
      break;
    }
    case "argvs":
      if (!Array.isArray(raw) || raw.some((a) => !Array.isArray(a) || a.length === 0 || a.some((x) => typeof x !== "string"))) {
        bad("must be a list of non-empty argv lists of strings, e.g. [[systemctl, try-restart, kubelet]]");
      }
      value = raw as string[][];
      break;
  }
  if (spec.choices && !spec.choices.includes(String(value))) bad(`must be one of ${spec.choices.join(", ")} (got ${JSON.stringify(value)})`);
  const problem = spec.check?.(value);
  if (problem) bad(problem);
  return value;
}

export type RawValues = Map<string, Value>;

/** Flattens and checks a config file's YAML text; unknown keys and wrong types name the key. */
export function parseConfigText(text: string, file: string): RawValues {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new UsageError(`config ${file}: not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  const out: RawValues = new Map();
  if (doc === null || doc === undefined) return out;
  const walk = (node: unknown, prefix: string): void => {
    if (typeof node !== "object" || node === null || Array.isArray(node)) {
      throw new UsageError(`config ${file}: ${prefix || "top level"} must be a mapping`);
    }
    for (const [k, v] of Object.entries(node)) {
      const key = prefix ? `${prefix}.${k}` : k;
      const spec = BY_KEY.get(key);
      if (spec) {
        if (v === null) continue;
        try {
          out.set(key, coerce(spec, v, "file"));
        } catch (err) {
          throw new UsageError(`config ${file}: ${(err as Error).message}`);
        }
      } else if (OPTIONS.some((o) => o.key.startsWith(`${key}.`))) {
        walk(v, key);
      } else {
        throw new UsageError(`config ${file}: unknown key ${key}`);
      }
    }
  };
  walk(doc, "");
  return out;
}

export function envValues(env: NodeJS.ProcessEnv): RawValues {
  const out: RawValues = new Map();
  for (const spec of OPTIONS) {
    if (!spec.flag) continue;
    const raw = env[envName(spec.flag)];
    if (raw !== undefined && raw !== "") out.set(spec.key, coerce(spec, raw, "env"));
  }
  return out;
}

/** Values from commander's parsed options (camelCased flag names). */
export function flagValues(opts: Record<string, unknown>): RawValues {
  const out: RawValues = new Map();
  for (const spec of OPTIONS) {
    if (!spec.flag) continue;
    const raw = opts[camel(spec.flag)];
    if (raw === undefined) continue;
    out.set(spec.key, coerce(spec, raw, "flag"));
  }
  return out;
}

export function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Later sources win: merge(file, env, flags). Path values are made absolute. */
export function mergeValues(...sources: RawValues[]): RawValues {
  const out: RawValues = new Map();
  for (const src of sources) for (const [k, v] of src) out.set(k, v);
  for (const [k, v] of out) if (BY_KEY.get(k)?.path && typeof v === "string") out.set(k, resolve(v));
  return out;
}

export const DEFAULTS = {
  role: "worker",
  keyAlgorithm: "ecdsa-p256" as KeyAlgorithm,
  timeout: "5m",
  caType: "cfssl",
  bindPort: 6443,
  serviceCidr: "10.96.0.0/12",
  dnsDomain: "cluster.local",
  saKeyFile: "/etc/node-join/sa.key",
  saPubFile: "/etc/node-join/sa.pub",
  metricsTextfile: "/var/lib/node_exporter/textfile_collector/node_join.prom",
  caLabels: { kubernetes: undefined, frontProxy: "front-proxy", etcd: "etcd" } as Record<CaName, string | undefined>,
};

/** Builds typed settings from merged values and defaults; `root` prefixes default paths. */
export function toSettings(values: RawValues, root: string): Settings {
  const str = (k: string): string | undefined => values.get(k) as string | undefined;
  const list = (k: string): string[] => (values.get(k) as string[] | undefined) ?? [];
  const caSettings = (ca: CaName): CaSettings => {
    const own = (f: string): string | undefined => str(`cas.${ca}.${f}`);
    const inherit = ca !== "kubernetes" && own("url") === undefined;
    const from = (f: string): string | undefined => own(f) ?? (inherit ? str(`cas.kubernetes.${f}`) : undefined);
    const s: CaSettings = {
      type: from("type") ?? DEFAULTS.caType,
      url: from("url") ?? "",
      certHashes: list(`cas.${ca}.certHashes`),
    };
    const label = own("label") ?? DEFAULTS.caLabels[ca];
    if (label) s.label = label;
    for (const f of ["caFile", "tlsCaFile"] as const) {
      const v = own(f) ?? (f === "tlsCaFile" ? from(f) : undefined);
      if (v) s[f] = v;
    }
    // One step-ca serves one root: a CA on the kubernetes CA's server shares its fingerprint.
    const fingerprint = own("fingerprint") ?? (inherit ? str("cas.kubernetes.fingerprint") : undefined);
    if (fingerprint) s.fingerprint = fingerprint.toLowerCase();
    for (const f of ["authKeyFile", "clientProfile", "servingProfile", "peerProfile", "provisioner", "passwordFile", "tokenFile"] as const) {
      const v = own(f) ?? (ca !== "kubernetes" ? str(`cas.kubernetes.${f}`) : undefined);
      if (v) s[f] = v;
    }
    return s;
  };
  const before = str("renew.before");
  const settings: Settings = {
    role: (str("role") ?? DEFAULTS.role) as Settings["role"],
    apiServer: str("apiServer") ?? "",
    ips: list("ips"),
    dnsNames: list("dnsNames"),
    keyAlgorithm: (str("keyAlgorithm") ?? DEFAULTS.keyAlgorithm) as KeyAlgorithm,
    timeoutMs: parseDuration(str("timeout") ?? DEFAULTS.timeout)!,
    unsafeSkipCaVerification: (values.get("unsafeSkipCaVerification") as boolean | undefined) ?? false,
    cas: { kubernetes: caSettings("kubernetes"), frontProxy: caSettings("frontProxy"), etcd: caSettings("etcd") },
    renew: { reuseKey: (values.get("renew.reuseKey") as boolean | undefined) ?? false },
    hooks: {},
    timer: { enabled: (values.get("timer.enabled") as boolean | undefined) ?? true },
    metrics: { textfile: str("metrics.textfile") ?? join(root, DEFAULTS.metricsTextfile) },
  };
  if (before) settings.renew.beforeMs = parseDuration(before)!;
  const postRenew = values.get("hooks.postRenew") as string[][] | undefined;
  if (postRenew) settings.hooks.postRenew = postRenew;
  const nodeName = str("nodeName");
  if (nodeName) settings.nodeName = nodeName;
  const iface = str("interface");
  if (iface) settings.interface = iface;
  if (settings.role === "control-plane") {
    const cp = (k: string) => values.get(`controlPlane.${k}`);
    settings.controlPlane = {
      serviceAccountKeyFile: (cp("serviceAccountKeyFile") as string | undefined) ?? join(root, DEFAULTS.saKeyFile),
      serviceAccountPublicKeyFile: (cp("serviceAccountPublicKeyFile") as string | undefined) ?? join(root, DEFAULTS.saPubFile),
      bindPort: (cp("bindPort") as number | undefined) ?? DEFAULTS.bindPort,
      serviceCidr: (cp("serviceCidr") as string | undefined) ?? DEFAULTS.serviceCidr,
      dnsDomain: (cp("dnsDomain") as string | undefined) ?? DEFAULTS.dnsDomain,
      apiServerCertSans: (cp("apiServerCertSans") as string[] | undefined) ?? [],
      etcdServerCertSans: (cp("etcdServerCertSans") as string[] | undefined) ?? [],
      etcdPeerCertSans: (cp("etcdPeerCertSans") as string[] | undefined) ?? [],
    };
    const adv = cp("advertiseAddress") as string | undefined;
    if (adv) settings.controlPlane.advertiseAddress = adv;
    const ep = cp("endpoint") as string | undefined;
    if (ep) {
      settings.controlPlane.endpoint = ep;
      // kubeadm points admin.conf, super-admin.conf and kubelet.conf at https://<controlPlaneEndpoint>.
      if (!settings.apiServer) settings.apiServer = `https://${ep}`;
    }
  }
  return settings;
}

/** The checks a join needs beyond per-key types: required settings and trust for every CA used. */
export function checkJoinSettings(s: Settings, casUsed: CaName[]): void {
  if (!s.apiServer) {
    throw new UsageError(
      s.role === "control-plane"
        ? "--api-server or --control-plane-endpoint (config key apiServer or controlPlane.endpoint) is required"
        : "--api-server (config key apiServer) is required",
    );
  }
  for (const ca of casUsed) {
    const c = s.cas[ca];
    const flagPrefix = CA_FLAG_PREFIX[ca];
    if (!c.url) throw new UsageError(`--${flagPrefix}ca-url (config key cas.${ca}.url) is required`);
    if (c.certHashes.length === 0 && !c.caFile && !c.fingerprint && !s.unsafeSkipCaVerification) {
      const stepCa = c.type === "step-ca" ? `--${flagPrefix}ca-fingerprint <hex>, ` : "";
      throw new UsageError(
        `${CA_TITLE[ca]}: no trust anchor: give ${stepCa}--${flagPrefix}ca-cert-hash sha256:<hex> or --${flagPrefix}ca-file <pem> (or --unsafe-skip-ca-verification)`,
      );
    }
  }
}

/**
 * The YAML persisted to /etc/node-join/config.yaml: the explicitly given values (never a secret:
 * no option holds one), with paths under `root` written as the booted host will see them.
 */
export function renderConfig(values: RawValues, root: string): string {
  const doc: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    let v = values.get(spec.key);
    if (v === undefined) continue;
    if (spec.path && typeof v === "string") v = hostPath(v, root);
    let node = doc;
    const parts = spec.key.split(".");
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = v;
  }
  return `# Written by node-join join; later commands (renew, status, timer) read it.\n${YAML.stringify(doc)}`;
}

/** The path a file under --root will have on the booted host (unchanged when not under root). */
export function hostPath(p: string, root: string): string {
  const rel = relative(resolve(root), resolve(p));
  if (root === "/" || rel.startsWith("..") || isAbsolute(rel)) return p;
  return `/${rel}`;
}

/**
 * The inverse, for paths read back from the persisted config when running with --root: the file
 * under root when it exists there, else the path as written (a file given from outside the root).
 */
export function underRoot(p: string, root: string, exists: (p: string) => boolean): string {
  if (root === "/" || !isAbsolute(p)) return p;
  const candidate = join(root, p);
  return exists(candidate) ? candidate : p;
}
