// The one table of certificate kinds, after kubeadm's certlist.go and kubeconfig specs
// (see ../shared/reference/kubernetes-pki.md). Issuance, verification, status and renewal all read
// it; no command knows a certificate by name.
import { ipFamily } from "../common/ip.js";
import type { Eku } from "./x509.js";
import { normalizeIp } from "./x509.js";

export const ROLES = ["worker", "control-plane"] as const;
export type Role = (typeof ROLES)[number];

/** The three CAs a control plane trusts; each is configured on its own. */
export const CA_NAMES = ["kubernetes", "frontProxy", "etcd"] as const;
export type CaName = (typeof CA_NAMES)[number];
/** How a CA is named in messages: its flag prefix. */
export const CA_DISPLAY: Record<CaName, string> = { kubernetes: "kubernetes", frontProxy: "front-proxy", etcd: "etcd" };

/** Which of a CA's signing profiles a kind is requested under. */
export type ProfileKind = "client" | "serving" | "peer";

export interface NodeIdentity {
  nodeName: string;
  ips: string[];
  dnsNames: string[];
}

export interface ControlPlaneSettings {
  advertiseAddress: string;
  bindPort: number;
  /** controlPlaneEndpoint as host:port (a load balancer or DNS name shared by all control planes). */
  endpoint: string;
  serviceCidr: string;
  dnsDomain: string;
  apiServerCertSans: string[];
  etcdServerCertSans: string[];
  etcdPeerCertSans: string[];
}

export interface TableContext {
  node: NodeIdentity;
  /** The API server URL every node reaches (controlPlaneEndpoint for control planes). */
  apiServer: string;
  controlPlane?: ControlPlaneSettings;
}

export interface SanSet {
  dnsNames: string[];
  ips: string[];
}

/** Where a kind's certificate and key live. Paths are relative to the store's directory. */
export type CertStore =
  | { type: "pki"; cert: string; key: string }
  | { type: "kubelet"; prefix: string }
  | { type: "embedded" };

export interface KubeconfigSpec {
  file: string;
  /** kubeadm: admin, super-admin and kubelet use controlPlaneEndpoint; the others the local API server. */
  server: "endpoint" | "local";
  /** false: client-certificate/client-key point at the kubelet's rotating -current.pem. */
  embed: boolean;
}

export interface CertKind {
  name: string;
  ca: CaName;
  profile: ProfileKind;
  commonName: (ctx: TableContext) => string;
  organizations: (ctx: TableContext) => string[];
  usages: Eku[];
  sans: (ctx: TableContext) => SanSet;
  roles: Role[];
  store: CertStore;
  kubeconfig?: KubeconfigSpec;
  /** Static pods to restart after this kind was renewed (kubeadm's documented way). */
  restarts: string[];
}

export interface CaKind {
  name: string;
  ca: CaName;
  file: string;
  keyFile: string;
  roles: Role[];
}

const NO_SANS = (): SanSet => ({ dnsNames: [], ips: [] });
const nodeUser = (ctx: TableContext): string => `system:node:${ctx.node.nodeName}`;
const BOTH: Role[] = ["worker", "control-plane"];
const CP: Role[] = ["control-plane"];

function cp(ctx: TableContext): ControlPlaneSettings {
  if (!ctx.controlPlane) throw new Error("control-plane settings are required for this certificate");
  return ctx.controlPlane;
}

/** Splits names into DNS names and IPs, removing duplicates, keeping first-seen order. */
export function sanSet(names: string[]): SanSet {
  const dnsNames: string[] = [];
  const ips: string[] = [];
  for (const raw of names) {
    const name = raw.trim();
    if (!name) continue;
    if (ipFamily(name)) {
      const ip = normalizeIp(name);
      if (!ips.includes(ip)) ips.push(ip);
    } else {
      const dns = name.toLowerCase();
      if (!dnsNames.includes(dns)) dnsNames.push(dns);
    }
  }
  return { dnsNames, ips };
}

/** The host part of host:port, [v6]:port or a bare host. */
export function endpointHost(endpoint: string): string {
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(endpoint);
  if (bracket) return bracket[1]!;
  if (ipFamily(endpoint)) return endpoint;
  const colon = endpoint.lastIndexOf(":");
  return colon > 0 ? endpoint.slice(0, colon) : endpoint;
}

/** First usable address of a CIDR: what kubeadm puts in the apiserver cert (10.96.0.1 for 10.96.0.0/12). */
export function firstServiceIp(cidrList: string): string {
  const cidr = cidrList.split(",")[0]!.trim();
  const [addr, bitsText] = cidr.split("/");
  const bits = Number(bitsText);
  const kind = ipFamily(addr ?? "");
  if (!addr || !kind || !Number.isInteger(bits) || bits < 0 || bits > (kind === 4 ? 32 : 128)) {
    throw new Error(`invalid CIDR ${cidr}`);
  }
  const width = kind === 4 ? 32 : 128;
  const value = kind === 4 ? ipv4ToBigInt(addr) : ipv6ToBigInt(addr);
  const mask = ((1n << BigInt(width)) - 1n) ^ ((1n << BigInt(width - bits)) - 1n);
  const first = (value & mask) + 1n;
  return kind === 4 ? bigIntToIpv4(first) : bigIntToIpv6(first);
}

function ipv4ToBigInt(ip: string): bigint {
  return ip.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}
function bigIntToIpv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join(".");
}
function ipv6ToBigInt(ip: string): bigint {
  const full = normalizeIp(ip);
  const [head, tail] = full.includes("::") ? full.split("::") : [full, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}
function bigIntToIpv6(v: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return normalizeIp(groups.join(":"));
}

export function apiServerSans(ctx: TableContext): SanSet {
  const c = cp(ctx);
  const domain = c.dnsDomain;
  return sanSet([
    ctx.node.nodeName,
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    `kubernetes.default.svc.${domain}`,
    firstServiceIp(c.serviceCidr),
    c.advertiseAddress,
    endpointHost(c.endpoint),
    ...c.apiServerCertSans,
  ]);
}

function etcdSans(extra: (c: ControlPlaneSettings) => string[]) {
  return (ctx: TableContext): SanSet => {
    const c = cp(ctx);
    return sanSet([ctx.node.nodeName, "localhost", c.advertiseAddress, "127.0.0.1", "::1", ...extra(c)]);
  };
}

const fixed = (value: string) => (): string => value;
const orgs = (...values: string[]) => (): string[] => values;

export const CERT_KINDS: readonly CertKind[] = [
  {
    name: "kubelet-client",
    ca: "kubernetes",
    profile: "client",
    commonName: nodeUser,
    organizations: orgs("system:nodes"),
    usages: ["clientAuth"],
    sans: NO_SANS,
    roles: BOTH,
    store: { type: "kubelet", prefix: "kubelet-client" },
    kubeconfig: { file: "kubelet.conf", server: "endpoint", embed: false },
    restarts: [],
  },
  {
    name: "kubelet-server",
    ca: "kubernetes",
    profile: "serving",
    commonName: nodeUser,
    organizations: orgs("system:nodes"),
    usages: ["serverAuth"],
    sans: (ctx) => sanSet([ctx.node.nodeName, ...ctx.node.dnsNames, ...ctx.node.ips]),
    roles: BOTH,
    store: { type: "kubelet", prefix: "kubelet-server" },
    restarts: [],
  },
  {
    name: "apiserver",
    ca: "kubernetes",
    profile: "serving",
    commonName: fixed("kube-apiserver"),
    organizations: orgs(),
    usages: ["serverAuth"],
    sans: apiServerSans,
    roles: CP,
    store: { type: "pki", cert: "apiserver.crt", key: "apiserver.key" },
    restarts: ["kube-apiserver"],
  },
  {
    name: "apiserver-kubelet-client",
    ca: "kubernetes",
    profile: "client",
    commonName: fixed("kube-apiserver-kubelet-client"),
    organizations: orgs("kubeadm:cluster-admins"),
    usages: ["clientAuth"],
    sans: NO_SANS,
    roles: CP,
    store: { type: "pki", cert: "apiserver-kubelet-client.crt", key: "apiserver-kubelet-client.key" },
    restarts: ["kube-apiserver"],
  },
  {
    name: "front-proxy-client",
    ca: "frontProxy",
    profile: "client",
    commonName: fixed("front-proxy-client"),
    organizations: orgs(),
    usages: ["clientAuth"],
    sans: NO_SANS,
    roles: CP,
    store: { type: "pki", cert: "front-proxy-client.crt", key: "front-proxy-client.key" },
    restarts: ["kube-apiserver"],
  },
  {
    name: "apiserver-etcd-client",
    ca: "etcd",
    profile: "client",
    commonName: fixed("kube-apiserver-etcd-client"),
    organizations: orgs(),
    usages: ["clientAuth"],
    sans: NO_SANS,
    roles: CP,
    store: { type: "pki", cert: "apiserver-etcd-client.crt", key: "apiserver-etcd-client.key" },
    restarts: ["kube-apiserver"],
  },
  {
    name: "etcd-server",
    ca: "etcd",
    profile: "peer",
    commonName: (ctx) => ctx.node.nodeName,
    organizations: orgs(),
    usages: ["serverAuth", "clientAuth"],
    sans: etcdSans((c) => c.etcdServerCertSans),
    roles: CP,
    store: { type: "pki", cert: "etcd/server.crt", key: "etcd/server.key" },
    restarts: ["etcd"],
  },
  {
    name: "etcd-peer",
    ca: "etcd",
    profile: "peer",
    commonName: (ctx) => ctx.node.nodeName,
    organizations: orgs(),
    usages: ["serverAuth", "clientAuth"],
    sans: etcdSans((c) => c.etcdPeerCertSans),
    roles: CP,
    store: { type: "pki", cert: "etcd/peer.crt", key: "etcd/peer.key" },
    restarts: ["etcd"],
  },
  {
    name: "etcd-healthcheck-client",
    ca: "etcd",
    profile: "client",
    commonName: fixed("kube-etcd-healthcheck-client"),
    organizations: orgs(),
    usages: ["clientAuth"],
    sans: NO_SANS,
    roles: CP,
    store: { type: "pki", cert: "etcd/healthcheck-client.crt", key: "etcd/healthcheck-client.key" },
    restarts: [],
  },
  ...(
    [
      ["admin.conf", "kubernetes-admin", ["kubeadm:cluster-admins"], "endpoint", []],
      ["super-admin.conf", "kubernetes-super-admin", ["system:masters"], "endpoint", []],
      ["controller-manager.conf", "system:kube-controller-manager", [], "local", ["kube-controller-manager"]],
      ["scheduler.conf", "system:kube-scheduler", [], "local", ["kube-scheduler"]],
    ] as const
  ).map(
    ([file, cn, o, server, restarts]): CertKind => ({
      name: file,
      ca: "kubernetes",
      profile: "client",
      commonName: fixed(cn),
      organizations: orgs(...o),
      usages: ["clientAuth"],
      sans: NO_SANS,
      roles: CP,
      store: { type: "embedded" },
      kubeconfig: { file, server, embed: true },
      restarts: [...restarts],
    }),
  ),
];

export const CA_KINDS: readonly CaKind[] = [
  { name: "ca", ca: "kubernetes", file: "ca.crt", keyFile: "ca.key", roles: BOTH },
  { name: "front-proxy-ca", ca: "frontProxy", file: "front-proxy-ca.crt", keyFile: "front-proxy-ca.key", roles: CP },
  { name: "etcd-ca", ca: "etcd", file: "etcd/ca.crt", keyFile: "etcd/ca.key", roles: CP },
];

export function kindsFor(role: Role): CertKind[] {
  return CERT_KINDS.filter((k) => k.roles.includes(role));
}

export function caKindsFor(role: Role): CaKind[] {
  return CA_KINDS.filter((k) => k.roles.includes(role));
}

export function findKind(name: string): CertKind | undefined {
  return CERT_KINDS.find((k) => k.name === name);
}

/** The subject and SANs a kind must carry for this node, as a join would request it today. */
export interface CertTemplate {
  commonName: string;
  organizations: string[];
  sans: SanSet;
  usages: Eku[];
}

export function templateFor(kind: CertKind, ctx: TableContext): CertTemplate {
  return {
    commonName: kind.commonName(ctx),
    organizations: kind.organizations(ctx),
    sans: kind.sans(ctx),
    usages: kind.usages,
  };
}
