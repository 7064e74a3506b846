// The kubelet's rotating store (k8s.io/client-go/util/certificate FileStore): each pair in a
// timestamped <prefix>-YYYY-MM-DD-HH-MM-SS.pem holding chain then key, and <prefix>-current.pem a
// symlink to the one in use, swapped atomically on renewal.
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { CERT_MODE, KEY_MODE, readStored, type CertStore, type Credentials } from "./cert-store.js";
import { inspect, readNoFollow } from "./fsio.js";
import { kubeconfigFile } from "./kubeconfig.js";
import type { Layout } from "./layout.js";
import type { FileChange } from "./transaction.js";

const KEY_BLOCK = /-----BEGIN (RSA |EC )?PRIVATE KEY-----[\s\S]*?-----END \1?PRIVATE KEY-----\n?/;

function splitChainAndKey(text: string): Credentials | undefined {
  const key = KEY_BLOCK.exec(text);
  if (!key) return undefined;
  return {
    chainPem: text.replace(key[0], ""),
    keyPem: key[0].endsWith("\n") ? key[0] : `${key[0]}\n`,
  };
}

/** kubelet rotation file name: <prefix>-YYYY-MM-DD-HH-MM-SS.pem, unique within the store. */
export function kubeletFileName(
  prefix: string,
  now: Date,
  exists: (name: string) => boolean,
): string {
  for (let t = now.getTime(); ; t += 1000) {
    const d = new Date(t).toISOString();
    const name = `${prefix}-${d.slice(0, 10)}-${d.slice(11, 13)}-${d.slice(14, 16)}-${d.slice(17, 19)}.pem`;
    if (!exists(name)) return name;
  }
}

/** The store's timestamped files, oldest first (the names sort by time). */
function stampedFiles(dir: string, prefix: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const stamp = new RegExp(`^${prefix}-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}\\.pem$`);
  return names.filter((n) => stamp.test(n)).sort();
}

/** Timestamped files beyond the current one and the `keep` newest previous ones. */
export function oldKubeletFiles(dir: string, prefix: string, keep: number): string[] {
  const link = inspect(join(dir, `${prefix}-current.pem`));
  const current = link.kind === "symlink" ? basename(link.target!) : undefined;
  const stamped = stampedFiles(dir, prefix).filter((n) => n !== current);
  return stamped.slice(0, Math.max(0, stamped.length - keep)).map((n) => join(dir, n));
}

export function kubeletRotating(prefix: string): CertStore {
  const current = (l: Layout) => join(l.kubeletPkiDir, `${prefix}-current.pem`);
  return {
    file: current,
    read: (l) =>
      readStored(current(l), () => {
        const file = current(l);
        const link = inspect(file);
        if (link.kind === "missing") return "missing";
        // Resolved inside the store, by name only: also right under --root, never elsewhere.
        let target = file;
        if (link.kind === "symlink") {
          target = join(l.kubeletPkiDir, basename(link.target!));
          if (inspect(target).kind === "missing") return `dangling symlink to ${link.target}`;
        }
        // Without a key block the certificate text still goes to the reader (pki/installed.ts),
        // which checks it first: a truncated file is an unreadable certificate, not a missing key.
        const text = readNoFollow(target).toString("utf8");
        return splitChainAndKey(text) ?? { chainPem: text, keyPem: "" };
      }),
    files: (w) => {
      const l = w.layout;
      const out: FileChange[] = [];
      if (w.issued) {
        const name = kubeletFileName(
          prefix,
          w.now,
          (n) => inspect(join(l.kubeletPkiDir, n)).kind !== "missing",
        );
        out.push({
          path: join(l.kubeletPkiDir, name),
          content: w.issued.chainPem + w.issued.keyPem,
          mode: KEY_MODE,
        });
        // A bare file name as target resolves both under --root and on the booted host.
        out.push({ path: current(l), symlink: name });
      }
      if (w.kubeconfig)
        out.push(kubeconfigFile(l, w.kubeconfig, { certFile: current(l), keyFile: current(l) }));
      return out;
    },
    leftovers: (l, keep) => oldKubeletFiles(l.kubeletPkiDir, prefix, keep),
    owned: (l, kubeconfig) =>
      [
        current(l),
        ...stampedFiles(l.kubeletPkiDir, prefix).map((n) => join(l.kubeletPkiDir, n)),
        ...(kubeconfig ? [kubeconfig] : []),
      ].filter((p) => inspect(p).kind !== "missing"),
  };
}

/**
 * A KubeletConfiguration drop-in that points the kubelet's serving TLS at node-join's rotating file
 * (without it the kubelet makes a self-signed kubelet.crt). Read when the kubelet runs with
 * --config-dir=/etc/kubernetes/kubelet.conf.d; otherwise merge the two fields into its config.yaml.
 */
export function kubeletServingDropin(l: Layout): FileChange {
  const pem = "/var/lib/kubelet/pki/kubelet-server-current.pem";
  return {
    path: join(l.kubernetesDir, "kubelet.conf.d", "50-node-join-serving.conf"),
    content: `# Written by node-join: serve the kubelet API with the CA-signed certificate node-join renews.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
serverTLSBootstrap: false
tlsCertFile: ${pem}
tlsPrivateKeyFile: ${pem}
`,
    mode: CERT_MODE,
  };
}
