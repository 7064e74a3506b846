// kubeconfig files as kubeadm writes them: cluster "kubernetes", user = certificate CN, context
// "<user>@kubernetes" as current-context, CA embedded.
import YAML from "yaml";

export const CLUSTER_NAME = "kubernetes";

export type ClientCredentials =
  | { embedded: true; certPem: string; keyPem: string }
  /** Paths to a file holding chain then key (the kubelet's rotating -current.pem). */
  | { embedded: false; certFile: string; keyFile: string };

export interface KubeconfigInput {
  server: string;
  caPem: string;
  user: string;
  credentials: ClientCredentials;
}

const b64 = (s: string): string => Buffer.from(s).toString("base64");

export function renderKubeconfig(input: KubeconfigInput): string {
  const context = `${input.user}@${CLUSTER_NAME}`;
  const user =
    input.credentials.embedded
      ? { "client-certificate-data": b64(input.credentials.certPem), "client-key-data": b64(input.credentials.keyPem) }
      : { "client-certificate": input.credentials.certFile, "client-key": input.credentials.keyFile };
  const doc = {
    apiVersion: "v1",
    clusters: [{ cluster: { "certificate-authority-data": b64(input.caPem), server: input.server }, name: CLUSTER_NAME }],
    contexts: [{ context: { cluster: CLUSTER_NAME, user: input.user }, name: context }],
    "current-context": context,
    kind: "Config",
    preferences: {},
    users: [{ name: input.user, user }],
  };
  return YAML.stringify(doc, { lineWidth: 0 });
}

export interface ParsedKubeconfig {
  server?: string;
  caData?: string;
  user?: string;
  certData?: string;
  keyData?: string;
  certFile?: string;
}

/** Reads back the parts node-join writes (status and renewal need the embedded certificate). */
export function parseKubeconfig(text: string): ParsedKubeconfig {
  const doc = YAML.parse(text) as {
    "current-context"?: string;
    contexts?: { name: string; context: { cluster: string; user: string } }[];
    clusters?: { name: string; cluster: { server?: string; "certificate-authority-data"?: string } }[];
    users?: { name: string; user: Record<string, string> }[];
  };
  const ctx = doc?.contexts?.find((c) => c.name === doc["current-context"])?.context;
  const cluster = doc?.clusters?.find((c) => c.name === ctx?.cluster)?.cluster;
  const user = doc?.users?.find((u) => u.name === ctx?.user)?.user;
  const dec = (v: string | undefined) => (v ? Buffer.from(v, "base64").toString("utf8") : undefined);
  const out: ParsedKubeconfig = {};
  if (cluster?.server) out.server = cluster.server;
  const ca = dec(cluster?.["certificate-authority-data"]);
  if (ca) out.caData = ca;
  if (ctx?.user) out.user = ctx.user;
  const cert = dec(user?.["client-certificate-data"]);
  if (cert) out.certData = cert;
  const key = dec(user?.["client-key-data"]);
  if (key) out.keyData = key;
  if (user?.["client-certificate"]) out.certFile = user["client-certificate"];
  return out;
}
