// What kubeadm issues to a control plane (its certificate table, kubernetes-pki.md), for the e2e
// tests that check the certificates a join installed whatever the CA.
import { controlPlaneNodeFlags, flags, type Flags } from "../../scripts/lib/args.js";

/**
 * `join --root <root>` of control plane `name` at `ip` (controlPlaneNodeFlags) with the extra SANs
 * kubeadmExpectations expects, then its CAs' flags.
 */
export function kubeadmJoin(root: string, name: string, ip: string, caFlags: Flags): string[] {
  return [
    "join",
    ...flags({
      root,
      ...controlPlaneNodeFlags(name, ip),
      "apiserver-cert-san": "api.example.org",
      "etcd-server-cert-san": "etcd.lab",
      ...caFlags,
    }),
  ];
}

/** One certificate of the table, and the CA of the table that signs it. */
export interface KubeadmCert {
  file: string;
  ca: "ca" | "front-proxy-ca" | "etcd-ca";
  cn: string;
  o: string[];
  ekus: string[];
  dns: string[];
  ips: string[];
}

/**
 * The certificates of control plane `name` at `ip` (behind cp.lab:6443, with the extra SANs
 * api.example.org and etcd.lab), by kubeadm's rules written out literally rather than read from
 * the agent's table.
 */
export function kubeadmExpectations(name: string, ip: string): KubeadmCert[] {
  return [
    {
      file: "apiserver.crt",
      ca: "ca",
      cn: "kube-apiserver",
      o: [],
      ekus: ["serverAuth"],
      dns: [
        name,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "cp.lab",
        "api.example.org",
      ],
      ips: ["10.96.0.1", ip],
    },
    {
      file: "apiserver-kubelet-client.crt",
      ca: "ca",
      cn: "kube-apiserver-kubelet-client",
      o: ["kubeadm:cluster-admins"],
      ekus: ["clientAuth"],
      dns: [],
      ips: [],
    },
    {
      file: "front-proxy-client.crt",
      ca: "front-proxy-ca",
      cn: "front-proxy-client",
      o: [],
      ekus: ["clientAuth"],
      dns: [],
      ips: [],
    },
    {
      file: "apiserver-etcd-client.crt",
      ca: "etcd-ca",
      cn: "kube-apiserver-etcd-client",
      o: [],
      ekus: ["clientAuth"],
      dns: [],
      ips: [],
    },
    {
      file: "etcd/server.crt",
      ca: "etcd-ca",
      cn: name,
      o: [],
      ekus: ["serverAuth", "clientAuth"],
      dns: [name, "localhost", "etcd.lab"],
      ips: [ip, "127.0.0.1", "0:0:0:0:0:0:0:1"],
    },
    {
      file: "etcd/peer.crt",
      ca: "etcd-ca",
      cn: name,
      o: [],
      ekus: ["serverAuth", "clientAuth"],
      dns: [name, "localhost"],
      ips: [ip, "127.0.0.1", "0:0:0:0:0:0:0:1"],
    },
    {
      file: "etcd/healthcheck-client.crt",
      ca: "etcd-ca",
      cn: "kube-etcd-healthcheck-client",
      o: [],
      ekus: ["clientAuth"],
      dns: [],
      ips: [],
    },
  ];
}
