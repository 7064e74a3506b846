// The three CAs of a kubeadm cluster, one descriptor each: how messages, flags and environment
// variables name it, its default CFSSL label, and the files of its certificate. Each CA is
// configured on its own (kubeadm's external-CA mode: no CA key on any node).
import type { Role } from "./roles.js";

export const CA_NAMES = ["kubernetes", "frontProxy", "etcd"] as const;
export type CaName = (typeof CA_NAMES)[number];

export interface CaDescriptor {
  readonly name: CaName;
  /** In messages: "CA front-proxy (cfssl …)". */
  readonly display: string;
  /** In help texts: "front-proxy CA". */
  readonly title: string;
  /** Of its flags: --front-proxy-ca-url. */
  readonly flagPrefix: string;
  /** Of its secrets' environment variables: NODE_JOIN_FRONT_PROXY_CA_AUTH_KEY. */
  readonly envPrefix: string;
  /** CFSSL signer label when none is configured (a multi-root CFSSL serves all three). */
  readonly defaultLabel?: string;
  /** kubeadm's name for the CA certificate in `certs check-expiration`. */
  readonly kind: string;
  /** Under /etc/kubernetes/pki: the certificate written, the key that is never there. */
  readonly file: string;
  readonly keyFile: string;
  readonly roles: readonly Role[];
}

function descriptor(
  name: CaName,
  display: string,
  files: { kind: string; file: string; keyFile: string },
  roles: readonly Role[],
  defaultLabel?: string,
): CaDescriptor {
  const flagPrefix = name === "kubernetes" ? "" : `${display}-`;
  return {
    name,
    display,
    title: `${display} CA`,
    flagPrefix,
    envPrefix: `NODE_JOIN_${flagPrefix.toUpperCase().replace(/-/g, "_")}CA_`,
    ...(defaultLabel ? { defaultLabel } : {}),
    ...files,
    roles,
  };
}

export const CAS: Readonly<Record<CaName, CaDescriptor>> = {
  kubernetes: descriptor(
    "kubernetes",
    "kubernetes",
    { kind: "ca", file: "ca.crt", keyFile: "ca.key" },
    ["worker", "control-plane"],
  ),
  frontProxy: descriptor(
    "frontProxy",
    "front-proxy",
    { kind: "front-proxy-ca", file: "front-proxy-ca.crt", keyFile: "front-proxy-ca.key" },
    ["control-plane"],
    "front-proxy",
  ),
  etcd: descriptor(
    "etcd",
    "etcd",
    { kind: "etcd-ca", file: "etcd/ca.crt", keyFile: "etcd/ca.key" },
    ["control-plane"],
    "etcd",
  ),
};

/**
 * One of a CA's settings as its messages name it: the CA's own flag and config key, never the
 * kubernetes CA's for the front-proxy or etcd CA (config/options.ts caOptions builds both the same
 * way). `flag` without the prefix ("ca-cert-hash"), `key` the field under cas.<ca> ("certHashes").
 */
export function caSetting(ca: CaDescriptor, flag: string, key: string): string {
  return `--${ca.flagPrefix}${flag} (config key cas.${ca.name}.${key})`;
}

/** The CAs a role trusts, in table order (kubernetes, front-proxy, etcd). */
export function casFor(role: Role): CaDescriptor[] {
  return CA_NAMES.map((n) => CAS[n]).filter((c) => c.roles.includes(role));
}
