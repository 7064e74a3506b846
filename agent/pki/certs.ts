// The one table of certificate kinds, after kubeadm's certlist.go and kubeconfig specs
// (cmd/kubeadm/app/phases/certs/certlist.go, phases/kubeconfig/kubeconfig.go). Issuance,
// verification, status and renewal all read it; no command knows a certificate by name.
import { inKubeconfig } from "../store/kubeconfig-store.js";
import { kubeletRotating } from "../store/kubelet-store.js";
import { pkiPair } from "../store/pki-pair.js";
import type { CertStore } from "../store/cert-store.js";
import type { CaName } from "./cas.js";
import type { Role } from "./roles.js";
import { endpointHost, firstServiceIp, sanSet, type SanSet } from "./sans.js";
import type { CertInfo, Eku } from "./x509.js";

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
  /**
   * controlPlaneEndpoint as host:port (a load balancer or DNS name shared by all control planes).
   */
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

export interface KubeconfigSpec {
  file: string;
  /**
   * kubeadm: admin, super-admin and kubelet use controlPlaneEndpoint; the others the local API
   * server.
   */
  server: "endpoint" | "local";
}

export interface CertKind {
  name: string;
  ca: CaName;
  profile: ProfileKind;
  commonName: (ctx: TableContext) => string;
  organizations: (ctx: TableContext) => string[];
  usages: Eku[];
  sans: (ctx: TableContext) => SanSet;
  roles: readonly Role[];
  /** Where the certificate and key live, and how they are read and written. */
  store: CertStore;
  kubeconfig?: KubeconfigSpec;
  /** Static pods to restart after this kind was renewed (kubeadm's documented way). */
  restarts: string[];
}

const NO_SANS = (): SanSet => ({ dnsNames: [], ips: [] });
const nodeUser = (ctx: TableContext): string => `system:node:${ctx.node.nodeName}`;
const BOTH: Role[] = ["worker", "control-plane"];
const CP: Role[] = ["control-plane"];

function cp(ctx: TableContext): ControlPlaneSettings {
  if (!ctx.controlPlane)
    throw new Error("control-plane settings are required for this certificate");
  return ctx.controlPlane;
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
    return sanSet([
      ctx.node.nodeName,
      "localhost",
      c.advertiseAddress,
      "127.0.0.1",
      "::1",
      ...extra(c),
    ]);
  };
}

const fixed = (value: string) => (): string => value;
const orgs =
  (...values: string[]) =>
  (): string[] =>
    values;

/** A control-plane certificate of kubeadm's PKI directory: <file>.crt and <file>.key. */
const pkiKind = (
  name: string,
  ca: CaName,
  profile: ProfileKind,
  cn: (ctx: TableContext) => string,
  o: string[],
  usages: Eku[],
  sans: (ctx: TableContext) => SanSet,
  file: string,
  restarts: string[],
): CertKind => ({
  name,
  ca,
  profile,
  commonName: cn,
  organizations: orgs(...o),
  usages,
  sans,
  roles: CP,
  store: pkiPair(`${file}.crt`, `${file}.key`),
  restarts,
});

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
    store: kubeletRotating("kubelet-client"),
    kubeconfig: { file: "kubelet.conf", server: "endpoint" },
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
    store: kubeletRotating("kubelet-server"),
    restarts: [],
  },
  // name, CA, profile, CN, O, usages, SANs, file under pki/, static pods to restart
  pkiKind(
    "apiserver",
    "kubernetes",
    "serving",
    fixed("kube-apiserver"),
    [],
    ["serverAuth"],
    apiServerSans,
    "apiserver",
    ["kube-apiserver"],
  ),
  pkiKind(
    "apiserver-kubelet-client",
    "kubernetes",
    "client",
    fixed("kube-apiserver-kubelet-client"),
    ["kubeadm:cluster-admins"],
    ["clientAuth"],
    NO_SANS,
    "apiserver-kubelet-client",
    ["kube-apiserver"],
  ),
  pkiKind(
    "front-proxy-client",
    "frontProxy",
    "client",
    fixed("front-proxy-client"),
    [],
    ["clientAuth"],
    NO_SANS,
    "front-proxy-client",
    ["kube-apiserver"],
  ),
  pkiKind(
    "apiserver-etcd-client",
    "etcd",
    "client",
    fixed("kube-apiserver-etcd-client"),
    [],
    ["clientAuth"],
    NO_SANS,
    "apiserver-etcd-client",
    ["kube-apiserver"],
  ),
  pkiKind(
    "etcd-server",
    "etcd",
    "peer",
    (ctx) => ctx.node.nodeName,
    [],
    ["serverAuth", "clientAuth"],
    etcdSans((c) => c.etcdServerCertSans),
    "etcd/server",
    ["etcd"],
  ),
  pkiKind(
    "etcd-peer",
    "etcd",
    "peer",
    (ctx) => ctx.node.nodeName,
    [],
    ["serverAuth", "clientAuth"],
    etcdSans((c) => c.etcdPeerCertSans),
    "etcd/peer",
    ["etcd"],
  ),
  pkiKind(
    "etcd-healthcheck-client",
    "etcd",
    "client",
    fixed("kube-etcd-healthcheck-client"),
    [],
    ["clientAuth"],
    NO_SANS,
    "etcd/healthcheck-client",
    [],
  ),
  ...(
    [
      ["admin.conf", "kubernetes-admin", ["kubeadm:cluster-admins"], "endpoint", []],
      ["super-admin.conf", "kubernetes-super-admin", ["system:masters"], "endpoint", []],
      [
        "controller-manager.conf",
        "system:kube-controller-manager",
        [],
        "local",
        ["kube-controller-manager"],
      ],
      ["scheduler.conf", "system:kube-scheduler", [], "local", ["kube-scheduler"]],
    ] as const
  ).map(([file, cn, o, server, restarts]): CertKind => ({
    name: file,
    ca: "kubernetes",
    profile: "client",
    commonName: fixed(cn),
    organizations: orgs(...o),
    usages: ["clientAuth"],
    sans: NO_SANS,
    roles: CP,
    store: inKubeconfig(file),
    kubeconfig: { file, server },
    restarts: [...restarts],
  })),
];

export function kindsFor(role: Role): CertKind[] {
  return CERT_KINDS.filter((k) => k.roles.includes(role));
}

export function findKind(name: string): CertKind | undefined {
  return CERT_KINDS.find((k) => k.name === name);
}

/** Every static pod whose certificates node-join issues (kubeadm's control-plane components). */
export const STATIC_PODS: readonly string[] = [...new Set(CERT_KINDS.flatMap((k) => k.restarts))];

/** The static pods that use any of the named kinds (restarted after those were renewed). */
export function podsForKinds(kinds: string[]): string[] {
  return [...new Set(kinds.flatMap((k) => findKind(k)?.restarts ?? []))];
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

/**
 * The server a kind's kubeconfig points at: the shared endpoint, or this control plane's own API
 * server.
 */
export function kubeconfigServer(spec: KubeconfigSpec, ctx: TableContext): string {
  const c = ctx.controlPlane;
  if (spec.server === "local" && c) {
    const host = c.advertiseAddress.includes(":") ? `[${c.advertiseAddress}]` : c.advertiseAddress;
    return `https://${host}:${c.bindPort}`;
  }
  return ctx.apiServer;
}

/**
 * Whether a certificate carries a Kubernetes client or node identity, as this table issues them:
 * a CN of the `system:` namespace (the API server's reserved users and groups, kubernetes
 * authentication docs: "system:" prefix), one of the table's fixed CNs (kube-apiserver,
 * kubernetes-admin, …) or one of its Os (system:nodes, kubeadm:cluster-admins, …). Such a
 * certificate was issued to a node or a cluster component, never to a CA server: a CA server
 * presenting one is an impostor (any worker holds one for the addresses it asked for). Undefined,
 * or what gives it away.
 */
export function kubernetesIdentity(
  cert: Pick<CertInfo, "commonNames" | "organizations">,
): string | undefined {
  const cn = cert.commonNames.find((n) => n.startsWith("system:") || TABLE_CNS.has(n));
  if (cn !== undefined) return `CN "${cn}"`;
  const o = cert.organizations.find((n) => n.startsWith("system:") || TABLE_OS.has(n));
  return o === undefined ? undefined : `O "${o}"`;
}

/** A context naming only the node: enough for every kind's CN and O. */
const probe = (nodeName: string): TableContext => ({
  node: { nodeName, ips: [], dnsNames: [] },
  apiServer: "",
});

/** The table's CNs that do not depend on the node (its name is the etcd certificates' CN). */
const TABLE_CNS: ReadonlySet<string> = new Set(
  CERT_KINDS.filter((k) => k.commonName(probe("a")) === k.commonName(probe("b"))).map((k) =>
    k.commonName(probe("a")),
  ),
);

const TABLE_OS: ReadonlySet<string> = new Set(
  CERT_KINDS.flatMap((k) => k.organizations(probe(""))),
);
