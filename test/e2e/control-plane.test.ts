// Three control planes joined against three real CFSSL CAs, then a real three-member etcd cluster
// run from the certificates they got (client-cert-auth and peer-client-cert-auth on).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { cfsslControlPlaneCaFlags } from "../../scripts/lib/args.js";
import { installControlPlaneSecrets, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { json, runCli } from "../helpers/cli.js";
import {
  assertEtcdClients,
  assertEtcdHealthy,
  etcdctl,
  startEtcdCluster,
  type EtcdCluster,
} from "../helpers/etcd.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { kubectlView } from "../helpers/kubectl.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import { startProxy } from "../helpers/proxy.js";
import { saKeyDir } from "../helpers/sa-keys.js";
import { kubeadmExpectations, kubeadmJoin } from "../helpers/kubeadm.js";

let k8s: CfsslCa, fp: CfsslCa, etcdCa: CfsslCa;
let saDir: string;
const NODES = [
  { name: "cp1", ip: "127.0.0.11", root: "" },
  { name: "cp2", ip: "127.0.0.12", root: "" },
  { name: "cp3", ip: "127.0.0.13", root: "" },
];
let cluster: EtcdCluster | undefined;

before(async () => {
  [k8s, fp, etcdCa] = await Promise.all([
    startCfssl({ cn: "kubernetes" }),
    startCfssl({ cn: "front-proxy-ca" }),
    startCfssl({ cn: "etcd-ca" }),
  ]);
  saDir = saKeyDir("nj-sa-");
  for (const n of NODES) {
    n.root = prepareRoot();
    const r = await runCli(cpArgs(n.root, n.name, n.ip));
    assert.equal(r.code, 0, `join ${n.name}: ${r.stderr}`);
  }
});
after(async () => {
  await cluster?.stop();
  await Promise.all([k8s, fp, etcdCa].map((c) => c?.stop()));
});

const clusterCas = () => ({ kubernetes: k8s, frontProxy: fp, etcd: etcdCa });

/** A root as cloud-init would leave it: the auth keys and the cluster's shared sa pair, 0600. */
function prepareRoot(): string {
  const root = tempRoot("nj-cp-");
  installControlPlaneSecrets(root, clusterCas(), saDir);
  return root;
}

const cpArgs = (root: string, name: string, ip: string) =>
  kubeadmJoin(root, name, ip, cfsslControlPlaneCaFlags(clusterCas(), join(root, "etc/node-join")));

const pki = (root: string, f: string) => join(root, "etc/kubernetes/pki", f);

const KUBECONFIGS = [
  {
    file: "admin.conf",
    user: "kubernetes-admin",
    o: ["kubeadm:cluster-admins"],
    server: () => "https://cp.lab:6443",
  },
  {
    file: "super-admin.conf",
    user: "kubernetes-super-admin",
    o: ["system:masters"],
    server: () => "https://cp.lab:6443",
  },
  {
    file: "controller-manager.conf",
    user: "system:kube-controller-manager",
    o: [],
    server: (ip: string) => `https://${ip}:6443`,
  },
  {
    file: "scheduler.conf",
    user: "system:kube-scheduler",
    o: [],
    server: (ip: string) => `https://${ip}:6443`,
  },
  {
    file: "kubelet.conf",
    user: "system:node:cpN",
    o: ["system:nodes"],
    server: () => "https://cp.lab:6443",
  },
];

const sorted = (a: string[]) => [...a].sort();

test("every certificate of the table matches kubeadm's CN/O/EKU/SAN rules and chains to its own CA", () => {
  for (const n of NODES) {
    for (const e of kubeadmExpectations(n.name, n.ip)) {
      const pem = readFileSync(pki(n.root, e.file), "utf8");
      const c = opensslInfo(pem);
      const where = `${n.name} ${e.file}`;
      assert.equal(c.cn, e.cn, where);
      assert.deepEqual(sorted(c.o), sorted(e.o), where);
      assert.deepEqual(sorted(c.ekus), sorted(e.ekus), where);
      assert.deepEqual(sorted(c.dns), sorted(e.dns), where);
      assert.deepEqual(sorted(c.ips), sorted(e.ips), where);
      assert.equal(c.isCa, false, where);
      const caFile = {
        ca: "ca.crt",
        "front-proxy-ca": "front-proxy-ca.crt",
        "etcd-ca": "etcd/ca.crt",
      }[e.ca]!;
      assert.ok(opensslVerifies(pem, pki(n.root, caFile)), `${where} chains to ${caFile}`);
      for (const other of ["ca.crt", "front-proxy-ca.crt", "etcd/ca.crt"].filter(
        (f) => f !== caFile,
      )) {
        assert.ok(!opensslVerifies(pem, pki(n.root, other)), `${where} must not chain to ${other}`);
      }
      assert.equal(statSync(pki(n.root, e.file)).mode & 0o777, 0o644, where);
      assert.equal(
        statSync(pki(n.root, e.file.replace(/\.crt$/, ".key"))).mode & 0o777,
        0o600,
        where,
      );
    }
    for (const [f, mode] of [
      ["ca.crt", 0o644],
      ["front-proxy-ca.crt", 0o644],
      ["etcd/ca.crt", 0o644],
      ["sa.key", 0o600],
      ["sa.pub", 0o644],
    ] as const) {
      assert.equal(statSync(pki(n.root, f)).mode & 0o777, mode, `${n.name} ${f}`);
    }
    assert.equal(
      readFileSync(pki(n.root, "sa.key"), "utf8"),
      readFileSync(join(saDir, "sa.key"), "utf8"),
      "the shared sa.key",
    );
    assert.equal(readFileSync(pki(n.root, "etcd/ca.crt"), "utf8").trim(), etcdCa.caPem.trim());
  }
});

test("the five kubeconfigs resolve with kubectl: cluster, user, context, server and embedded credentials", () => {
  for (const n of NODES) {
    for (const k of KUBECONFIGS) {
      const file = join(n.root, "etc/kubernetes", k.file);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const view = kubectlView<{
        "current-context": string;
        clusters: {
          name: string;
          cluster: { server: string; "certificate-authority-data": string };
        }[];
        users: {
          name: string;
          user: { "client-certificate-data": string; "client-key-data": string };
        }[];
      }>(file);
      const user = k.user.replace("cpN", n.name);
      assert.equal(view["current-context"], `${user}@kubernetes`, k.file);
      assert.equal(view.clusters[0]!.name, "kubernetes");
      assert.equal(view.clusters[0]!.cluster.server, k.server(n.ip), k.file);
      assert.equal(
        Buffer.from(view.clusters[0]!.cluster["certificate-authority-data"], "base64")
          .toString()
          .trim(),
        k8s.caPem.trim(),
      );
      assert.equal(view.users[0]!.name, user);
      const certPem = Buffer.from(
        view.users[0]!.user["client-certificate-data"],
        "base64",
      ).toString();
      const c = opensslInfo(certPem);
      assert.equal(c.cn, user, k.file);
      assert.deepEqual(sorted(c.o), sorted(k.o), k.file);
      assert.deepEqual(c.ekus, ["clientAuth"], k.file);
      assert.ok(opensslVerifies(certPem, pki(n.root, "ca.crt")), k.file);
    }
  }
});

test("no CA private key exists anywhere under the roots", () => {
  for (const n of NODES) {
    const found = execFileSync("find", [
      n.root,
      "-name",
      "*ca.key",
      "-o",
      "-name",
      "*-ca.key",
      "-o",
      "-name",
      "ca-key.pem",
    ])
      .toString()
      .trim()
      .split("\n")
      .filter(Boolean)
      .filter((p) => !p.includes("/etc/node-join/"));
    assert.deepEqual(found, [], n.name);
    // (the CFSSL *auth* keys under /etc/node-join are HMAC secrets, not CA keys, and are 0600)
  }
});

test("a three-member etcd cluster runs on those certificates; a wrong-CA certificate is refused", async () => {
  cluster = await startEtcdCluster(NODES);
  const root = NODES[0]!.root;
  await assertEtcdHealthy(cluster, root);
  const members = await etcdctl(root, "etcd/healthcheck-client", cluster.endpoints, [
    "member",
    "list",
  ]);
  assert.equal((members.out.match(/started/g) ?? []).length, 3, members.out);

  // A client certificate signed by the kubernetes CA, not the etcd CA: etcd must refuse it.
  const wrong = await assertEtcdClients(cluster, [root, NODES[1]!.root, NODES[2]!.root], "joined");
  assert.match(
    wrong.out,
    /bad certificate|certificate required|unknown authority|deadline exceeded|context deadline/i,
  );
  // The same on the peer port: a would-be peer presenting a kubernetes-CA certificate is refused.
  const peer = cluster.members[0]!.peerUrl.replace("https://", "");
  let s: string;
  try {
    s = execFileSync("sh", [
      "-c",
      `printf 'GET /members HTTP/1.0\\r\\n\\r\\n' | openssl s_client -connect ${peer} -CAfile ${pki(root, "etcd/ca.crt")} -cert ${pki(root, "apiserver.crt")} -key ${pki(root, "apiserver.key")} -quiet 2>&1`,
    ]).toString();
  } catch (err) {
    s = String((err as { stdout?: Buffer }).stdout ?? err);
  }
  assert.match(s, /alert|bad certificate|unknown ca|error/i, s);
  assert.doesNotMatch(s, /cp1=|"name":"cp1"/);
  const okPeer = execFileSync("sh", [
    "-c",
    `printf 'GET /members HTTP/1.0\\r\\n\\r\\n' | openssl s_client -connect ${peer} -CAfile ${pki(root, "etcd/ca.crt")} -cert ${pki(root, "etcd/peer.crt")} -key ${pki(root, "etcd/peer.key")} -quiet 2>&1 || true`,
  ]).toString();
  assert.match(okPeer, /"name":"cp1"/, "the right peer certificate is accepted");
});

test("status prints both kubeadm tables within 80 columns, and EXTERNALLY MANAGED yes with --wide", async () => {
  const r = await runCli(["status", "--root", NODES[0]!.root, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const st = json<{
    certificates: { name: string; externallyManaged: boolean; managed: boolean }[];
    certificateAuthorities: { name: string; externallyManaged: boolean }[];
  }>(r);
  assert.deepEqual(
    st.certificateAuthorities.map((c) => [c.name, c.externallyManaged]),
    [
      ["ca", true],
      ["front-proxy-ca", true],
      ["etcd-ca", true],
    ],
  );
  assert.equal(st.certificates.length, 13);
  assert.ok(st.certificates.every((c) => c.externallyManaged && c.managed));
  const text = await runCli(["status", "--root", NODES[0]!.root]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^CERTIFICATE {15}EXPIRES {15}RESIDUAL {2}RENEW IN {2}STATE$/m);
  assert.match(text.stdout, /^etcd-ca {16}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}9y {8}ok$/m);
  for (const line of text.stdout.split("\n")) assert.ok(line.length <= 80, line);
  const wide = await runCli(["status", "--root", NODES[0]!.root, "--wide"]);
  assert.match(
    wide.stdout,
    new RegExp(
      `^etcd-ca {16}\\S+Z {2}9y {8}yes {17}ok {5}certHashes {2}${etcdCa.pin} {2}${NODES[0]!.root}/etc/kubernetes/pki/etcd/ca\\.crt {9}CN=\\S`,
      "m",
    ),
  );
});

test("a failure in the middle of the set (etcd CA gone after the kubernetes certificates were issued) changes nothing", async () => {
  const root = NODES[0]!.root;
  const before = snapshot(root);
  const signsBefore = k8s.signRequests();
  // The etcd CA answers its info request, then goes away when the first etcd CSR arrives.
  const proxy = await startProxy(etcdCa.url, (path) =>
    path.endsWith("/info") ? { type: "forward" } : { type: "drop" },
  );
  try {
    const args = cpArgs(root, "cp1", "127.0.0.11").map((a) => (a === etcdCa.url ? proxy.url : a));
    const r = await runCli([...args, "--force", "--timeout", "3s"]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /CA etcd \(cfssl http:\/\/127\.0\.0\.1:\d+ label etcd\) unreachable/);
    assert.ok(
      k8s.signRequests() - signsBefore >= 8,
      "the kubernetes CA had signed its certificates before the etcd CA failed",
    );
    assert.ok(
      proxy.requests.some((q) => q.path.endsWith("/authsign")),
      "an etcd CSR was sent",
    );
    assert.deepEqual(
      diffSnapshots(before, snapshot(root)),
      [],
      "the previous set is byte-for-byte unchanged",
    );
  } finally {
    await proxy.close();
  }
});

test("re-issuing keeps the previous set under /var/lib/node-join/backup (last 3)", async () => {
  const root = NODES[2]!.root;
  const oldApiserver = readFileSync(pki(root, "apiserver.crt"), "utf8");
  for (let i = 0; i < 4; i++) {
    const r = await runCli([...cpArgs(root, "cp3", "127.0.0.13"), "--force", "--json"]);
    assert.equal(r.code, 0, r.stderr);
  }
  const backups = execFileSync("ls", [join(root, "var/lib/node-join/backup")])
    .toString()
    .trim()
    .split("\n");
  assert.equal(backups.length, 3);
  const first = readFileSync(
    join(root, "var/lib/node-join/backup", backups[0]!, "etc/kubernetes/pki/apiserver.crt"),
    "utf8",
  );
  assert.notEqual(first, oldApiserver, "older backups beyond 3 were pruned");
  assert.notEqual(readFileSync(pki(root, "apiserver.crt"), "utf8"), first);
});

test("a missing or mismatched service-account pair is a clear error naming the files; nothing written", async () => {
  const root = prepareRoot();
  execFileSync("rm", [join(root, "etc/node-join/sa.pub")]);
  const before = snapshot(root);
  const r = await runCli(cpArgs(root, "cp9", "127.0.0.19"));
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /service-account public key .*\/etc\/node-join\/sa\.pub is missing/);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
  execFileSync("sh", [
    "-c",
    `openssl genrsa 2048 2>/dev/null | openssl rsa -pubout -out ${join(root, "etc/node-join/sa.pub")} 2>/dev/null`,
  ]);
  const before2 = snapshot(root);
  const m = await runCli(cpArgs(root, "cp9", "127.0.0.19"));
  assert.equal(m.code, 5, m.stderr);
  assert.match(
    m.stderr,
    /service-account key pair does not match: .*sa\.pub is not the public half of .*sa\.key/,
  );
  assert.deepEqual(diffSnapshots(before2, snapshot(root)), []);
});
