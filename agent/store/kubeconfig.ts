// kubeconfig files as kubeadm writes them: cluster "kubernetes", user = certificate CN, context
// "<user>@kubernetes" as current-context, CA embedded.
import { dirname, relative } from "node:path";
import YAML from "yaml";
import { KEY_MODE, type Credentials, type KubeconfigTarget } from "./cert-store.js";
import type { Layout } from "./layout.js";
import type { FileChange } from "./transaction.js";

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
  const user = input.credentials.embedded
    ? {
        "client-certificate-data": b64(input.credentials.certPem),
        "client-key-data": b64(input.credentials.keyPem),
      }
    : { "client-certificate": input.credentials.certFile, "client-key": input.credentials.keyFile };
  const doc = {
    apiVersion: "v1",
    clusters: [
      {
        cluster: { "certificate-authority-data": b64(input.caPem), server: input.server },
        name: CLUSTER_NAME,
      },
    ],
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
    clusters?: {
      name: string;
      cluster: { server?: string; "certificate-authority-data"?: string };
    }[];
    users?: { name: string; user: Record<string, string> }[];
  };
  const ctx = doc?.contexts?.find((c) => c.name === doc["current-context"])?.context;
  const cluster = doc?.clusters?.find((c) => c.name === ctx?.cluster)?.cluster;
  const user = doc?.users?.find((u) => u.name === ctx?.user)?.user;
  const dec = (v: string | undefined) =>
    v ? Buffer.from(v, "base64").toString("utf8") : undefined;
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

/**
 * The kubeconfig file of a kind: credentials embedded, or as references to the files that hold
 * them. On / a reference is kubeadm's absolute path; under --root it is relative to the
 * kubeconfig, which client-go resolves the same way on the booted host.
 */
export function kubeconfigFile(
  l: Layout,
  target: KubeconfigTarget,
  creds: Credentials | { certFile: string; keyFile: string },
): FileChange {
  const ref = (p: string) => (l.root === "/" ? p : relative(dirname(target.path), p));
  const credentials: ClientCredentials =
    "chainPem" in creds
      ? { embedded: true, certPem: creds.chainPem, keyPem: creds.keyPem }
      : { embedded: false, certFile: ref(creds.certFile), keyFile: ref(creds.keyFile) };
  const content = renderKubeconfig({
    server: target.server,
    caPem: target.caPem,
    user: target.user,
    credentials,
  });
  return { path: target.path, content, mode: KEY_MODE };
}
