// What kubeadm issues to a control plane (its certificate table, kubernetes-pki.md), for the e2e
// tests that check the certificates a join installed whatever the CA.

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
