// Reaching the CA through an HTTP proxy, chosen as curl chooses it (curl(1) ENVIRONMENT; libcurl
// CURLOPT_PROXY, CURLOPT_NOPROXY): `https_proxy`/`HTTPS_PROXY` for https:// URLs, `http_proxy`
// (lower case only: upper-case HTTP_PROXY is ignored, as curl ignores it since httpoxy,
// CVE-2016-5385, where a CGI request's "Proxy:" header becomes HTTP_PROXY) for http:// URLs, and
// `no_proxy`/`NO_PROXY` for the hosts reached directly; the lower-case variable wins. Pure
// functions: the environment is passed in, nothing is read from the process.
import { ipFamily } from "../common/ip.js";
import { cidrContains, ipValue, parseCidr } from "../pki/sans.js";

/** The port curl assumes for a proxy URL without one (curl(1) --proxy). */
export const DEFAULT_PROXY_PORT = 1080;

/** The proxy settings of a run (flags, environment, config file merged); never credentials. */
export interface ProxySettings {
  /** Proxy for https:// CA URLs, http://host:port. */
  https?: string;
  /** Proxy for http:// CA URLs. */
  http?: string;
  /** Hosts reached without a proxy (NO_PROXY syntax, one entry each). */
  noProxy: string[];
  credentialsFile?: string;
  /**
   * A standard variable names a proxy node-join cannot use (socks5://): the message of the usage
   * error a run that contacts a CA stops with; `status` and the other commands do not mind.
   */
  unusable?: string;
}

/** One proxy as a request uses it. */
export interface ProxyRoute {
  /** http://host:port: what messages name (never the credentials). */
  url: string;
  host: string;
  port: number;
  /** Proxy-Authorization header value (Basic, RFC 7617); a secret. */
  authorization?: string;
  /** Where the credentials came from (a file or a variable), for a refusal's message. */
  credentialsSource?: string;
}

/** Everything the HTTP client needs to pick the route of each request. */
export interface ProxyConfig {
  https?: ProxyRoute;
  http?: ProxyRoute;
  noProxy: string[];
}

/**
 * Where the user information of a proxy URL (scheme optional) ends: at its last "@" (a password may
 * hold "@" or "/"); undefined when it has none.
 */
function userInfoEnd(text: string): { scheme: string; at: number } | undefined {
  const at = text.lastIndexOf("@");
  if (at < 0) return undefined;
  const scheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(text)?.[0] ?? "";
  return at < scheme.length ? undefined : { scheme, at };
}

/**
 * `http://user:pass@host:3128` as messages may show it: `http://user:***@host:3128`. Everything
 * up to the last "@" is user information (a password may hold "@" or "/"), the scheme optional.
 */
export function redactUrl(text: string): string {
  const u = userInfoEnd(text);
  if (!u) return text;
  const user = text.slice(u.scheme.length, u.at).split(":")[0]!;
  return `${u.scheme}${/[/?#]/.test(user) ? "***" : `${user}:***`}${text.slice(u.at)}`;
}

/** `http://user:pass@host:3128` without its user information: `http://host:3128`. */
export function withoutCredentials(text: string): string {
  const u = userInfoEnd(text);
  return u ? `${u.scheme}${text.slice(u.at + 1)}` : text;
}

export interface ParsedProxyUrl {
  /** http://host:port, without credentials or path. */
  url: string;
  host: string;
  port: number;
  user?: string;
  password?: string;
}

/**
 * A proxy URL as curl reads one: scheme http:// (the default when none is given), port 1080 when
 * none is given; the path is ignored. Other schemes (https://, socks5://) are refused: node-join
 * speaks HTTP CONNECT to a plain-HTTP proxy only. Returns the reason as a string when it is
 * unusable.
 */
export function parseProxyUrl(text: string): ParsedProxyUrl | string {
  const withScheme = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(text) ? text : `http://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    return `${redactUrl(text)} is not a URL`;
  }
  if (u.protocol !== "http:") {
    return `${redactUrl(text)}: only http:// proxies are supported (HTTP CONNECT over plain TCP), not ${u.protocol}//`;
  }
  if (!u.hostname) return `${redactUrl(text)} names no host`;
  // WHATWG URL hides a port equal to the scheme's default (80): read it from the text.
  const authority = withScheme.replace(/^[^:]+:\/\//, "").split(/[/?#]/)[0]!;
  const portText = /:(\d+)$/.exec(authority.slice(authority.lastIndexOf("@") + 1))?.[1];
  const port = portText !== undefined ? Number(portText) : DEFAULT_PROXY_PORT;
  const out: ParsedProxyUrl = {
    url: `http://${u.hostname}:${port}`,
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port,
  };
  if (u.username) out.user = decodeURIComponent(u.username);
  if (u.password) out.password = decodeURIComponent(u.password);
  return out;
}

/** Why a proxy URL from a flag, NODE_JOIN_* variable or config key is unusable, or undefined. */
export function checkProxySetting(v: string): string | undefined {
  if (!/^http:\/\//i.test(v) && !v.includes("://"))
    // The suggestion repeats the value: its password, if any, as everywhere else (redactUrl).
    return `is not a URL: did you mean http://${redactUrl(v)}?`;
  const p = parseProxyUrl(v);
  if (typeof p === "string") return p;
  if (p.user !== undefined || p.password !== undefined) {
    return `${redactUrl(v)} carries credentials: give them in a file (--proxy-credentials-file, config key proxy.credentialsFile) or NODE_JOIN_PROXY_CREDENTIALS`;
  }
  return undefined;
}

/** Why one NO_PROXY entry is unusable, or undefined. */
export function checkNoProxyEntry(entry: string): string | undefined {
  return parseNoProxyEntry(entry)
    ? undefined
    : "is not a host name, domain, IP address or CIDR range (with an optional :port), nor *";
}

interface NoProxyEntry {
  /** Lower-case name without its leading and trailing dots; an IP; or a CIDR. */
  host: string;
  cidr?: ReturnType<typeof parseCidr>;
  port?: number;
  all?: true;
}

const NAME = /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;

function parseNoProxyEntry(raw: string): NoProxyEntry | undefined {
  const entry = raw.trim().toLowerCase();
  if (entry === "*") return { host: "*", all: true };
  let host = entry;
  let port: number | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracket) {
    host = bracket[1]!;
    if (bracket[2]) port = Number(bracket[2]);
  } else if (!ipFamily(entry) && !(entry.includes("/") && entry.includes("::"))) {
    const m = /^(.*):(\d+)$/.exec(entry);
    if (m && !m[1]!.includes(":")) {
      host = m[1]!;
      port = Number(m[2]);
    }
  }
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  const withPort = (e: NoProxyEntry): NoProxyEntry => (port !== undefined ? { ...e, port } : e);
  if (host.includes("/")) {
    const cidr = parseCidr(host);
    return cidr ? withPort({ host, cidr }) : undefined;
  }
  if (ipFamily(host)) return withPort({ host });
  const name = host.replace(/^\.+/, "").replace(/\.$/, "");
  return NAME.test(name) ? withPort({ host: name }) : undefined;
}

/**
 * Whether NO_PROXY `entries` exempt `host` (a URL's hostname, IPv6 without brackets) on `port`, as
 * curl's lib/noproxy.c decides (7.86+): `*` alone matches every host; a name matches itself and
 * every name below it (`example.com` and `.example.com` both match `ca.example.com`), case
 * insensitively and without trailing dots; an IP address or CIDR range matches addresses only,
 * compared as numbers (`::1` is `0:0::1`). `:port` (Go's http.ProxyFromEnvironment has it; curl
 * does not) limits an entry to that port. Entries that are not valid are ignored, as curl ignores
 * them.
 */
export function noProxyMatches(host: string, port: number, entries: readonly string[]): boolean {
  const h = host
    .replace(/^\[|\]$/g, "")
    .toLowerCase()
    .replace(/\.$/, "");
  const hostIp = ipValue(h);
  for (const raw of entries) {
    const e = parseNoProxyEntry(raw);
    if (!e) continue;
    if (e.all) return true;
    if (e.port !== undefined && e.port !== port) continue;
    if (e.cidr) {
      if (hostIp && cidrContains(e.cidr, h)) return true;
      continue;
    }
    const ip = ipValue(e.host);
    if (ip) {
      if (hostIp && hostIp.family === ip.family && hostIp.value === ip.value) return true;
      continue;
    }
    if (!hostIp && (h === e.host || h.endsWith(`.${e.host}`))) return true;
  }
  return false;
}

/** The proxy `url` is reached through, or undefined for a direct connection. */
export function proxyRouteFor(url: URL, cfg: ProxyConfig | undefined): ProxyRoute | undefined {
  if (!cfg) return undefined;
  const route = url.protocol === "https:" ? cfg.https : cfg.http;
  if (!route) return undefined;
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  return noProxyMatches(url.hostname, port, cfg.noProxy) ? undefined : route;
}

/** The standard variables, by the setting each gives, lower-case name first (it wins). */
export const STANDARD_PROXY_VARIABLES = {
  "proxy.https": ["https_proxy", "HTTPS_PROXY"],
  // Not HTTP_PROXY: see the head of this file.
  "proxy.http": ["http_proxy"],
  "proxy.noProxy": ["no_proxy", "NO_PROXY"],
} as const;
export type StandardProxyKey = keyof typeof STANDARD_PROXY_VARIABLES;

/**
 * Every variable that names a proxy to some program, node-join's own choice or not: curl reads
 * HTTP_PROXY outside CGI and ALL_PROXY/all_proxy for any scheme (curl(1) ENVIRONMENT). A URL in
 * any of them may carry user:password, which no other program node-join starts is given.
 */
export const PROXY_URL_VARIABLES: readonly string[] = [
  ...STANDARD_PROXY_VARIABLES["proxy.https"],
  ...STANDARD_PROXY_VARIABLES["proxy.http"],
  "HTTP_PROXY",
  "all_proxy",
  "ALL_PROXY",
];

/** A value taken from the standard environment, and the variable it came from. */
export interface StandardProxyValue<T> {
  value: T;
  variable: string;
  /** The URL carried user:password (kept out of `value`). */
  hadCredentials?: boolean;
  /** Why node-join cannot use it (then `value` is empty): an error only for a run that would. */
  unusable?: string;
}

export interface StandardProxyEnv {
  "proxy.https"?: StandardProxyValue<string>;
  "proxy.http"?: StandardProxyValue<string>;
  "proxy.noProxy"?: StandardProxyValue<string[]>;
}

function firstSet(env: NodeJS.ProcessEnv, names: readonly string[]): [string, string] | undefined {
  for (const n of names) {
    const v = env[n];
    if (v !== undefined && v.trim() !== "") return [n, v.trim()];
  }
  return undefined;
}

/**
 * The proxy settings the standard variables give, without credentials (they stay in the
 * environment: `proxyCredentialsFromEnv`). A proxy URL node-join cannot use is returned with the
 * reason, naming the variable, its password redacted.
 */
export function standardProxyEnv(env: NodeJS.ProcessEnv): StandardProxyEnv {
  const out: StandardProxyEnv = {};
  for (const key of ["proxy.https", "proxy.http"] as const) {
    const found = firstSet(env, STANDARD_PROXY_VARIABLES[key]);
    if (!found) continue;
    const p = parseProxyUrl(found[1]);
    if (typeof p === "string") {
      out[key] = {
        value: "",
        variable: found[0],
        unusable: `environment variable ${found[0]}: ${p}`,
      };
      continue;
    }
    out[key] = {
      value: p.url,
      variable: found[0],
      ...(p.user !== undefined ? { hadCredentials: true } : {}),
    };
  }
  const np = firstSet(env, STANDARD_PROXY_VARIABLES["proxy.noProxy"]);
  if (np) {
    // curl separates entries with commas and ignores the blanks around them, and entries it cannot
    // read; so does node-join (the list is persisted, and the config file takes only valid ones).
    const list = np[1]
      .split(/[,\s]+/)
      .map((s) => s.trim())
      .filter((e) => e !== "" && checkNoProxyEntry(e) === undefined);
    out["proxy.noProxy"] = { value: list, variable: np[0] };
  }
  return out;
}

/**
 * The credentials in the standard variable that names `proxyUrl` for `key`, if it carries them:
 * accepted as curl accepts them, never printed.
 */
export function proxyCredentialsFromEnv(
  env: NodeJS.ProcessEnv,
  key: "proxy.https" | "proxy.http",
  proxyUrl: string,
): { user: string; password: string; source: string } | undefined {
  const found = firstSet(env, STANDARD_PROXY_VARIABLES[key]);
  if (!found) return undefined;
  const p = parseProxyUrl(found[1]);
  if (typeof p === "string" || p.url !== proxyUrl || p.user === undefined) return undefined;
  return { user: p.user, password: p.password ?? "", source: found[0] };
}

/** `user:password` as a Proxy-Authorization header value (Basic, RFC 7617). */
export function basicAuthorization(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`;
}

/** Why the content of a proxy credentials file or variable is not `user:password`, or undefined. */
export function checkProxyCredentials(value: string): string | undefined {
  const colon = value.indexOf(":");
  if (colon <= 0) return "is not user:password";
  if (/[\r\n]/.test(value)) return "must hold one line, user:password";
  return undefined;
}
