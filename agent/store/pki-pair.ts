// kubeadm's PKI pair: <name>.crt and <name>.key under /etc/kubernetes/pki.
import { basename, join } from "node:path";
import { CERT_MODE, KEY_MODE, readStored, type CertStore } from "./cert-store.js";
import { inspect, readNoFollow } from "./fsio.js";
import { kubeconfigFile } from "./kubeconfig.js";

export function pkiPair(cert: string, key: string): CertStore {
  const certPath = (l: { pkiDir: string }) => join(l.pkiDir, cert);
  const keyPath = (l: { pkiDir: string }) => join(l.pkiDir, key);
  return {
    file: certPath,
    read: (l) =>
      readStored(certPath(l), () => {
        if (inspect(certPath(l)).kind === "missing") return "missing";
        const chainPem = readNoFollow(certPath(l)).toString("utf8");
        if (inspect(keyPath(l)).kind === "missing") return `key ${basename(keyPath(l))} missing`;
        return { chainPem, keyPem: readNoFollow(keyPath(l)).toString("utf8") };
      }),
    files: (w) => [
      { path: certPath(w.layout), content: w.current.chainPem, mode: CERT_MODE },
      { path: keyPath(w.layout), content: w.current.keyPem, mode: KEY_MODE },
      ...(w.kubeconfig
        ? [
            kubeconfigFile(w.layout, w.kubeconfig, {
              certFile: certPath(w.layout),
              keyFile: keyPath(w.layout),
            }),
          ]
        : []),
    ],
    leftovers: () => [],
    owned: (l, kubeconfig) =>
      [certPath(l), keyPath(l), ...(kubeconfig ? [kubeconfig] : [])].filter(
        (p) => inspect(p).kind !== "missing",
      ),
  };
}
