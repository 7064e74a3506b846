// A kubeconfig that embeds its client certificate and key (kubeadm's admin.conf, super-admin.conf,
// controller-manager.conf, scheduler.conf): the kubeconfig is the store.
import { join } from "node:path";
import { readStored, type CertStore } from "./cert-store.js";
import { inspect, readNoFollow } from "./fsio.js";
import { kubeconfigFile, parseKubeconfig } from "./kubeconfig.js";
import type { Layout } from "./layout.js";

export function inKubeconfig(file: string): CertStore {
  const path = (l: Layout) => join(l.kubernetesDir, file);
  return {
    file: path,
    read: (l) =>
      readStored(path(l), () => {
        if (inspect(path(l)).kind === "missing") return "missing";
        const kc = parseKubeconfig(readNoFollow(path(l)).toString("utf8"));
        if (!kc.certData || !kc.keyData) return "holds no embedded client certificate";
        return { chainPem: kc.certData, keyPem: kc.keyData };
      }),
    files: (w) => {
      if (!w.kubeconfig)
        throw new Error(
          `${file}: a kubeconfig store needs the kind's kubeconfig (certificate table)`,
        );
      return [kubeconfigFile(w.layout, { ...w.kubeconfig, path: path(w.layout) }, w.current)];
    },
    leftovers: () => [],
    owned: (l) => (inspect(path(l)).kind === "missing" ? [] : [path(l)]),
  };
}
