// The one table of settings. It drives the flags, the NODE_JOIN_* environment variables, the
// config file keys, validation and what is persisted; its keys are types, so code that reads a
// setting by a misspelt key does not compile. Precedence: flags > environment > file > defaults.
import { backendOptions, CA_TYPES, type BackendField } from "../ca/index.js";
import type { CaOptionSpec } from "../ca/options.js";
import { checkNoProxyEntry, checkProxySetting } from "../ca/proxy.js";
import { ipFamily } from "../common/ip.js";
import { CAS, type CaName } from "../pki/cas.js";
import { KEY_ALGORITHMS } from "../pki/keys.js";
import { ROLES } from "../pki/roles.js";
import { firstServiceIp, isNodeName } from "../pki/sans.js";
import { isPin } from "../pki/x509.js";

export type OptionType = "string" | "list" | "bool" | "duration" | "int" | "argvs";

/**
 * The value an option of each type holds once coerced (a duration keeps its text: it is persisted).
 */
export interface ValueTypes {
  string: string;
  list: string[];
  bool: boolean;
  duration: string;
  int: number;
  argvs: string[][];
}
export type Value = ValueTypes[OptionType];

export interface OptionSpec<K extends string = string, T extends OptionType = OptionType> {
  /** Dotted key in the config file. */
  readonly key: K;
  /** Long flag without dashes; also gives the environment variable NODE_JOIN_<FLAG>. */
  readonly flag?: string;
  readonly type: T;
  readonly valueName?: string;
  readonly description: string;
  readonly choices?: readonly string[];
  /** A file path: resolved to absolute, and persisted relative to --root when it lies under it. */
  readonly path?: boolean;
  /** The command whose flag this is (default: join). */
  readonly command?: "join" | "renew";
  /**
   * Why this option is never read from nor written to the config file (flags and environment
   * only); undefined: it is.
   */
  readonly notInFile?: string;
  /**
   * A list whose config key also takes one string (a one-element list), and is persisted as one
   * while it holds one value: a config file written before the key became a list stays valid.
   */
  readonly oneAsString?: boolean;
  /** Why a well-typed value is still wrong, or undefined. */
  check?(value: ValueTypes[T]): string | undefined;
}

/** Declares one option, keeping its key and type as types. */
const opt = <const K extends string, T extends OptionType>(
  spec: OptionSpec<K, T>,
): OptionSpec<K, T> => spec;

const checkUrl =
  (schemes: string[]) =>
  (v: string): string | undefined => {
    let u: URL | undefined;
    try {
      u = new URL(v);
    } catch {
      u = undefined;
    }
    const scheme = u?.protocol.replace(":", "");
    if (u === undefined || !schemes.includes(scheme!)) {
      // "10.0.0.10:6443" (kubeadm's controlPlaneEndpoint form) is no URL, "ca.example:8888" one of
      // scheme "ca.example": either way a host and port, and the scheme is what is missing.
      if (!v.includes("://"))
        return `is not a URL: did you mean ${schemes.map((sc) => `${sc}://${v}`).join(" or ")}?`;
      return u === undefined ? "is not a URL" : `must be a ${schemes.join(" or ")} URL`;
    }
    if (u.username || u.password) return "must not carry credentials";
    return undefined;
  };
/**
 * Every URL of a list checked as one is (the lone one of a one-element list keeps the plain
 * message); the same server twice would only be asked twice.
 */
const checkUrls =
  (schemes: string[]) =>
  (list: string[]): string | undefined => {
    const one = checkUrl(schemes);
    if (list.length === 0) return "must name at least one URL";
    if (list.length === 1) return one(list[0]!);
    for (const [i, v] of list.entries()) {
      const problem = one(v);
      if (problem) return `"${v}" ${problem}`;
      if (list.indexOf(v) !== i) return `"${v}" is given twice`;
    }
    return undefined;
  };
const firstBad = (list: string[], ok: (v: string) => boolean, what: string): string | undefined => {
  const bad = list.find((v) => !ok(v));
  return bad === undefined ? undefined : `"${bad}" ${what}`;
};
/** A one-value check applied to a value or to each value of a list (naming the bad one). */
const eachValue = (v: string | string[], check: (v: string) => string | undefined) => {
  if (typeof v === "string") return check(v);
  for (const x of v) {
    const why = check(x);
    if (why) return `"${x}" ${why}`;
  }
  return undefined;
};
const DNS_NAME =
  /^(?=.{1,253}$)(\*\.)?[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
/**
 * A TCTI as tpm2-tools takes it (tpm2-tools(1) "TCTI Configuration"): a name, then ":" and its
 * configuration; passed as one argument, never through a shell.
 */
const checkTcti = (v: string): string | undefined =>
  /^[a-z][a-z0-9-]*(:[^\s]*)?$/.test(v)
    ? undefined
    : "is not a TCTI (name[:config], e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321)";
const checkPins = (v: string[]) => firstBad(v, isPin, "is not sha256:<64 lower-case hex digits>");
const checkIps = (v: string[]) => firstBad(v, (ip) => ipFamily(ip) !== 0, "is not an IP address");
const checkDnsNames = (v: string[]) => firstBad(v, (d) => DNS_NAME.test(d), "is not a DNS name");

/**
 * A backend's option (ca/options.ts) as the option of one CA: the CA's flag prefix and title, the
 * table's types (a list, or one string), and its check applied to each value of a list.
 */
function backendOption<const C extends CaName>(
  name: C,
  o: CaOptionSpec<BackendField>,
): OptionSpec<`cas.${C}.${BackendField}`, "string" | "list"> {
  const { flagPrefix: p, title } = CAS[name];
  const check = o.check;
  return {
    key: `cas.${name}.${o.field}`,
    flag: `${p}${o.flag}`,
    type: o.kind === "list" ? "list" : "string",
    valueName: o.valueName,
    description: `${title}: ${o.description}`,
    ...(o.choices ? { choices: o.choices } : {}),
    ...(o.kind === "path" ? { path: true } : {}),
    ...(check ? { check: (v: string | string[]) => eachValue(v, check) } : {}),
  };
}

/**
 * The options of one CA; the front-proxy and etcd CAs take the same with their flag prefix. Its
 * own, where it is and how it is trusted, then every backend's (ca/index.ts; a CA's type may come
 * from the config file, after the flags were parsed), what they ask the CA for last.
 */
function caOptions<const C extends CaName>(name: C) {
  const { flagPrefix: p, title } = CAS[name];
  const k = `cas.${name}` as const;
  const own = backendOptions();
  return [
    opt({
      key: `${k}.type`,
      flag: `${p}ca-type`,
      type: "string",
      valueName: "type",
      choices: CA_TYPES,
      description: `${title}: backend type`,
    }),
    opt({
      key: `${k}.url`,
      flag: `${p}ca-url`,
      type: "list",
      oneAsString: true,
      valueName: "url",
      description: `${title}: URL of the CA server (repeatable)`,
      check: checkUrls(["http", "https"]),
    }),
    opt({
      key: `${k}.label`,
      flag: `${p}ca-label`,
      type: "string",
      valueName: "label",
      description: `${title}: CFSSL signer label`,
    }),
    opt({
      key: `${k}.certHashes`,
      flag: `${p}ca-cert-hash`,
      type: "list",
      valueName: "sha256:hex",
      description: `${title}: SPKI pin of the CA certificate (repeatable)`,
      check: checkPins,
    }),
    opt({
      key: `${k}.caFile`,
      flag: `${p}ca-file`,
      type: "string",
      valueName: "pem",
      path: true,
      description: `${title}: trust this CA certificate file instead of a pin`,
    }),
    opt({
      key: `${k}.tlsCaFile`,
      flag: `${p}ca-tls-file`,
      type: "string",
      valueName: "pem",
      path: true,
      description: `${title}: trust bundle for the CA server's TLS certificate (default: the pinned CA)`,
    }),
    ...own.filter((o) => o.listed !== "last").map((o) => backendOption(name, o)),
    ...own.filter((o) => o.listed === "last").map((o) => backendOption(name, o)),
  ] as const;
}

export const OPTIONS = [
  opt({
    key: "role",
    flag: "role",
    type: "string",
    valueName: "role",
    choices: ROLES,
    description: "the node's role",
  }),
  opt({
    key: "apiServer",
    flag: "api-server",
    type: "string",
    valueName: "url",
    description: "API server URL (controlPlaneEndpoint) written to kubelet.conf",
    check: checkUrl(["https"]),
  }),
  opt({
    key: "nodeName",
    flag: "node-name",
    type: "string",
    valueName: "name",
    description: "node name (default: short hostname, lower-cased)",
    check: (v) =>
      isNodeName(v) ? undefined : "is not a valid node name (lower-case DNS subdomain)",
  }),
  opt({
    key: "ips",
    flag: "ip",
    type: "list",
    valueName: "addr",
    description: "node IP for the serving certificate (repeatable; replaces discovery)",
    check: checkIps,
  }),
  opt({
    key: "dnsNames",
    flag: "dns-name",
    type: "list",
    valueName: "name",
    description: "extra DNS name for the serving certificate (repeatable)",
    check: checkDnsNames,
  }),
  opt({
    key: "interface",
    flag: "interface",
    type: "string",
    valueName: "name",
    description: "take node IPs from this interface only",
  }),
  opt({
    key: "keyAlgorithm",
    flag: "key-algorithm",
    type: "string",
    valueName: "alg",
    choices: KEY_ALGORITHMS,
    description: "private key algorithm",
  }),
  opt({
    key: "timeout",
    flag: "timeout",
    type: "duration",
    valueName: "duration",
    description: "give up on an unreachable CA after this long (default 5m)",
  }),
  opt({
    key: "clock.tolerance",
    flag: "clock-tolerance",
    type: "duration",
    valueName: "duration",
    description:
      "the host's clock is not set when it differs from the CA's HTTP Date by more than this (default 5m): join waits, renew and status exit 11",
  }),
  opt({
    key: "unsafeSkipCaVerification",
    flag: "unsafe-skip-ca-verification",
    type: "bool",
    description:
      "join only: trust the CA certificate the server sends (prints a warning) and pin it in the config for every later run",
    notInFile:
      "a renewal must never trust whatever CA answers; join pins the CA it trusted (cas.<ca>.certHashes): remove the key, or join again",
  }),
  opt({
    key: "proxy.https",
    flag: "https-proxy",
    type: "string",
    valueName: "url",
    description:
      "HTTP proxy for https:// CA URLs, reached with CONNECT (default: https_proxy/HTTPS_PROXY)",
    check: checkProxySetting,
  }),
  opt({
    key: "proxy.http",
    flag: "http-proxy",
    type: "string",
    valueName: "url",
    description: "HTTP proxy for http:// CA URLs (default: http_proxy)",
    check: checkProxySetting,
  }),
  opt({
    key: "proxy.noProxy",
    // curl's own name: commander reads any --no-<name> as the negation of --<name>.
    flag: "noproxy",
    type: "list",
    valueName: "host",
    description:
      "reach this host, domain, IP or CIDR directly, without the proxy (repeatable; * for all; default: no_proxy/NO_PROXY)",
    check: (v) => firstBad(v, (e) => checkNoProxyEntry(e) === undefined, checkNoProxyEntry("")!),
  }),
  opt({
    key: "proxy.credentialsFile",
    flag: "proxy-credentials-file",
    type: "string",
    valueName: "file",
    path: true,
    description: "file holding the proxy's user:password (mode 0600)",
  }),
  ...caOptions("kubernetes"),
  ...caOptions("frontProxy"),
  ...caOptions("etcd"),
  opt({
    key: "controlPlane.advertiseAddress",
    flag: "advertise-address",
    type: "string",
    valueName: "ip",
    description: "control plane: this node's API server / etcd address (default: first node IP)",
    check: (v) => (ipFamily(v) ? undefined : "is not an IP address"),
  }),
  opt({
    key: "controlPlane.bindPort",
    flag: "bind-port",
    type: "int",
    valueName: "port",
    description: "control plane: local API server port (default 6443)",
    check: (v) => (v > 0 && v < 65536 ? undefined : "is not a port number"),
  }),
  opt({
    key: "controlPlane.endpoint",
    flag: "control-plane-endpoint",
    type: "string",
    valueName: "host:port",
    description: "control plane: shared endpoint (default: host:port of --api-server)",
  }),
  opt({
    key: "controlPlane.serviceCidr",
    flag: "service-cidr",
    type: "string",
    valueName: "cidr",
    description: "control plane: service CIDR (default 10.96.0.0/12)",
    check: (v) => {
      try {
        firstServiceIp(v);
        return undefined;
      } catch {
        return "is not a CIDR";
      }
    },
  }),
  opt({
    key: "controlPlane.dnsDomain",
    flag: "dns-domain",
    type: "string",
    valueName: "domain",
    description: "control plane: cluster DNS domain (default cluster.local)",
    check: (v) => checkDnsNames([v]),
  }),
  opt({
    key: "controlPlane.apiServerCertSans",
    flag: "apiserver-cert-san",
    type: "list",
    valueName: "name",
    description: "control plane: extra apiserver SAN (repeatable)",
  }),
  opt({
    key: "controlPlane.etcdServerCertSans",
    flag: "etcd-server-cert-san",
    type: "list",
    valueName: "name",
    description: "control plane: extra etcd server SAN (repeatable)",
  }),
  opt({
    key: "controlPlane.etcdPeerCertSans",
    flag: "etcd-peer-cert-san",
    type: "list",
    valueName: "name",
    description: "control plane: extra etcd peer SAN (repeatable)",
  }),
  opt({
    key: "controlPlane.serviceAccountKeyFile",
    flag: "sa-key-file",
    type: "string",
    valueName: "file",
    path: true,
    description: "control plane: the cluster's shared sa.key (default /etc/node-join/sa.key)",
  }),
  opt({
    key: "controlPlane.serviceAccountPublicKeyFile",
    flag: "sa-pub-file",
    type: "string",
    valueName: "file",
    path: true,
    description: "control plane: the cluster's shared sa.pub (default /etc/node-join/sa.pub)",
  }),
  opt({
    key: "renew.before",
    flag: "before",
    command: "renew",
    type: "duration",
    valueName: "duration",
    description:
      "renew when less than this remains (default: kubelet rule, 70-90% of the lifetime)",
  }),
  opt({
    key: "renew.reuseKey",
    type: "bool",
    description: "keep the private key on renewal (default: a fresh key every time)",
  }),
  opt({
    key: "renew.authKey",
    flag: "auth-key-after-join",
    type: "string",
    valueName: "mode",
    choices: ["keep", "drop"],
    description:
      "the CFSSL auth key files once join succeeded: left for renewals (the default), or deleted (a renewal that must sign then needs them back)",
  }),
  opt({
    key: "renew.onSignerChange",
    type: "string",
    choices: ["deadline", "early"],
    description:
      "when a certificate signed by a CA's retiring signer is renewed: as any other (the default), or spread over renew.signerChangeWindow from the switch",
  }),
  opt({
    key: "renew.signerChangeWindow",
    type: "duration",
    description:
      "the renewals of renew.onSignerChange spread over this long after the node first sees the new signer (default 7d)",
  }),
  opt({
    key: "hooks.postRenew",
    type: "argvs",
    description: "commands (argv arrays, no shell) run after a renewal; [] switches them off",
  }),
  opt({
    key: "hooks.preLeave",
    type: "argvs",
    description:
      "commands (argv arrays, no shell) node-join leave runs before it removes anything (default: systemctl stop kubelet when the kubelet is active; [] switches them off)",
  }),
  opt({
    key: "timer.enabled",
    type: "bool",
    description: "join installs the renewal timer (default true; --no-timer)",
  }),
  opt({
    key: "tpm.tcti",
    flag: "tpm-tcti",
    type: "string",
    valueName: "tcti",
    description:
      "how tpm2-tools reaches the TPM that holds the node's identity (default device:/dev/tpmrm0; swtpm:host=H,port=P for a software TPM)",
    check: checkTcti,
  }),
  opt({
    key: "retryUnit.enabled",
    type: "bool",
    description:
      "a first join that fails for a reason a later attempt can fix (exit 3, 7, 11) leaves node-join-join.service to retry it (default true; --no-retry-unit)",
  }),
  opt({
    key: "metrics.textfile",
    type: "string",
    path: true,
    description:
      "Prometheus textfile (default /var/lib/node_exporter/textfile_collector/node_join.prom)",
  }),
] as const;

type AnyOption = (typeof OPTIONS)[number];
export type OptionKey = AnyOption["key"];
export type ValueOf<K extends OptionKey> = ValueTypes[Extract<
  AnyOption,
  { readonly key: K }
>["type"]];

/** Every option seen through the common shape, for code that walks the whole table. */
export const ALL_OPTIONS: readonly OptionSpec<OptionKey>[] = OPTIONS;

const BY_KEY = new Map<string, OptionSpec<OptionKey>>(ALL_OPTIONS.map((o) => [o.key, o]));

export function optionByKey(key: string): OptionSpec<OptionKey> | undefined {
  return BY_KEY.get(key);
}

/**
 * The help group of an option, derived from its key: each CA's options, the control plane's, and
 * the common ones under commander's own "Options:" heading. `prefix` is how its description starts
 * (for the tables, where no heading says it), left out under the heading.
 */
export interface OptionGroup {
  readonly heading: string;
  readonly prefix?: string;
}

export function optionGroup(spec: OptionSpec<OptionKey>): OptionGroup {
  const ca = /^cas\.(\w+)\./.exec(spec.key)?.[1] as CaName | undefined;
  const title = ca ? CAS[ca].title : spec.key.startsWith("controlPlane.") ? "control plane" : "";
  if (!title) return { heading: "Options:" };
  return { heading: `${title[0]!.toUpperCase()}${title.slice(1)} options:`, prefix: `${title}: ` };
}

export function envName(flag: string): string {
  return `NODE_JOIN_${flag.toUpperCase().replace(/-/g, "_")}`;
}

export function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
