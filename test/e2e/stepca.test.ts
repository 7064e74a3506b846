// Joins against real step-ca servers (test/helpers/stepca.ts: smallstep 0.19 built from Debian's
// sources), run as separate processes: workers with one-time tokens or a provisioner password,
// three control planes through three step-ca CAs (one provisioner each), then a real etcd cluster
// on the issued certificates, and the refusals.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { json, runCli } from "../helpers/cli.js";
import {
  assertEtcdClients,
  assertEtcdHealthy,
  startEtcdCluster,
  type EtcdCluster,
} from "../helpers/etcd.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { expectFailure } from "../helpers/expect.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import {
  startStepCa,
  stepCaFlags,
  stepControlPlaneJoin,
  stepCaLog,
  stepWorkerJoin,
  type StepCaHandle,
} from "../helpers/stepca.js";
import { saKeyDir } from "../helpers/sa-keys.js";
import { kubeadmExpectations, kubeadmJoin } from "../helpers/kubeadm.js";

let k8s: StepCaHandle, fpCa: StepCaHandle, etcdCa: StepCaHandle;
let saDir: string;
let cluster: EtcdCluster | undefined;
const NODES = [
  { name: "cp1", ip: "127.0.0.11", root: "" },
  { name: "cp2", ip: "127.0.0.12", root: "" },
  { name: "cp3", ip: "127.0.0.13", root: "" },
];

before(async () => {
  [k8s, fpCa, etcdCa] = await Promise.all([
    startStepCa(), // "workers" (O fixed to system:nodes) and "control-plane" (O from the CSR)
    startStepCa({ provisioners: [{ name: "front-proxy" }] }),
    startStepCa({ provisioners: [{ name: "etcd" }] }),
  ]);
  saDir = saKeyDir("nj-sa-");
});
after(async () => {
  await cluster?.stop();
  await Promise.all([k8s, fpCa, etcdCa].map((c) => c?.stop()));
});

const password = (ca: StepCaHandle, name: string) =>
  ca.provisioners.find((p) => p.name === name)!.password;
const SERVER_SANS = (name: string) => [name, `${name}.lab`, "10.0.0.21", "2001:db8::21"];

function secretFile(root: string, name: string, text: string): string {
  const dir = join(root, "etc/node-join");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

function workerArgs(root: string, name: string, extra: string[]): string[] {
  return [
    ...stepWorkerJoin(root, k8s, {
      "node-name": name,
      ip: ["10.0.0.21", "2001:db8::21"],
      "dns-name": `${name}.lab`,
    }),
    ...extra,
  ];
}

/**
 * Both tokens a worker needs: the serving certificate's (its SANs) and the client's (none, step's
 * default).
 */
async function workerTokens(name: string): Promise<string[]> {
  return [
    await k8s.mintToken("workers", `system:node:${name}`, SERVER_SANS(name)),
    await k8s.mintToken("workers", `system:node:${name}`, []),
  ];
}

const requests = (ca: StepCaHandle, path: string) =>
  (stepCaLog(ca).match(new RegExp(`path=${path.replace(/\//g, "\\/")} `, "g")) ?? []).length;
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----\n[\s\S]*?-----END CERTIFICATE-----\n/g;

/**
 * The installed kubelet pem is leaf, then the intermediate, then the key; the leaf chains to the
 * root through it.
 */
function checkKubeletPem(root: string, prefix: string): ReturnType<typeof opensslInfo> {
  const text = readFileSync(join(root, "var/lib/kubelet/pki", `${prefix}-current.pem`), "utf8");
  const certs = text.match(CERT_BLOCK) ?? [];
  assert.equal(certs.length, 2, `${prefix}: leaf and intermediate`);
  assert.equal(
    certs[1]!.trim(),
    k8s.intermediatePem.trim(),
    `${prefix}: the second certificate is the intermediate`,
  );
  assert.ok(
    text.indexOf("PRIVATE KEY-----") > text.lastIndexOf("-----END CERTIFICATE-----"),
    "key after the chain",
  );
  const rootFile = join(root, "etc/kubernetes/pki/ca.crt");
  assert.equal(readFileSync(rootFile, "utf8").trim(), k8s.rootPem.trim(), "ca.crt is the root");
  assert.ok(opensslVerifies(certs.join(""), rootFile), `${prefix} chains to the root`);
  assert.ok(!opensslVerifies(certs[0]!, rootFile), `${prefix}: not without the intermediate`);
  return opensslInfo(certs[0]!);
}

function checkWorker(root: string, name: string): void {
  const c = checkKubeletPem(root, "kubelet-client");
  assert.equal(c.cn, `system:node:${name}`);
  assert.deepEqual(c.o, ["system:nodes"]);
  assert.ok(c.ekus.includes("clientAuth"));
  const s = checkKubeletPem(root, "kubelet-server");
  assert.deepEqual(s.o, ["system:nodes"]);
  assert.deepEqual(s.dns, [name, `${name}.lab`]);
  assert.deepEqual(s.ips, ["10.0.0.21", "2001:DB8:0:0:0:0:0:21"]);
  assert.ok(s.ekus.includes("serverAuth"));
}

test("worker join with one-time tokens from a file: O=system:nodes, SANs, leaf+intermediate installed, no token persisted", async () => {
  const root = tempRoot("nj-step-");
  const tokens = await workerTokens("w1");
  // Any order: each token goes to the certificate whose CN and SANs it names.
  const file = secretFile(root, "ca.tokens", `# from step ca token\n${tokens[1]}\n${tokens[0]}\n`);
  const signs = requests(k8s, "/1.0/sign");
  const r = await runCli(workerArgs(root, "w1", ["--ca-token-file", file, "--json"]));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    json<{ issued: { kind: string }[] }>(r).issued.map((i) => i.kind),
    ["kubelet-client", "kubelet-server"],
  );
  assert.equal(requests(k8s, "/1.0/sign") - signs, 2);
  checkWorker(root, "w1");
  const config = readFileSync(join(root, "etc/node-join/config.yaml"), "utf8");
  assert.match(config, /type: step-ca/);
  assert.match(config, /tokenFile: \/etc\/node-join\/ca\.tokens/);
  assert.match(config, new RegExp(`fingerprint: ${k8s.rootFingerprint}`));
  for (const t of tokens)
    assert.ok(
      !config.includes(t) && !r.stdout.includes(t) && !r.stderr.includes(t),
      "no token in the config or the output",
    );

  // Again from the persisted config: nothing to do, and no token needed for it.
  const before = snapshot(root);
  const again = await runCli(["join", "--root", root]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /nothing to do/);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});

test("worker join with tokens in NODE_JOIN_CA_TOKEN", async () => {
  const root = tempRoot("nj-step-");
  const r = await runCli(workerArgs(root, "w2", []), {
    env: { NODE_JOIN_CA_TOKEN: (await workerTokens("w2")).join("\n") },
  });
  assert.equal(r.code, 0, r.stderr);
  checkWorker(root, "w2");
});

test("worker join with the provisioner password: node-join mints a token per certificate", async () => {
  const root = tempRoot("nj-step-");
  const pw = secretFile(root, "workers.password", `${password(k8s, "workers")}\n`);
  const r = await runCli(
    workerArgs(root, "w3", ["--ca-provisioner", "workers", "--ca-password-file", pw]),
  );
  assert.equal(r.code, 0, r.stderr);
  checkWorker(root, "w3");
  const config = readFileSync(join(root, "etc/node-join/config.yaml"), "utf8");
  assert.match(
    config,
    /provisioner: workers\n\s+passwordFile: \/etc\/node-join\/workers\.password/,
  );
  assert.ok(!config.includes(password(k8s, "workers")));
  // The provisioner's template fixed O: the CSR's O is not what decides it (a token holder cannot
  // ask for system:masters).
  assert.match(stepCaLog(k8s), /path=\/provisioners /);
});

test("one token for a worker that needs two certificates: exit 2 before any CSR, and the token is not spent", async () => {
  const root = tempRoot("nj-step-");
  const [serving, clientToken] = await workerTokens("w4");
  const file = secretFile(root, "ca.tokens", `${clientToken}\n`);
  const signs = requests(k8s, "/1.0/sign");
  await expectFailure(
    workerArgs(root, "w4", ["--ca-token-file", file]),
    2,
    /no one-time token for kubelet-server \(CN system:node:w4, SANs w4, w4\.lab, 10\.0\.0\.21, 2001:db8::21\) in .*ca\.tokens \(it holds: token 1: system:node:w4\): a token is good for exactly one certificate.*--ca-provisioner with --ca-password-file/,
    root,
  );
  assert.equal(requests(k8s, "/1.0/sign"), signs, "no CSR reached the CA");
  writeFileSync(file, `${clientToken}\n${serving}\n`);
  const ok = await runCli(workerArgs(root, "w4", ["--ca-token-file", file]));
  assert.equal(ok.code, 0, `the first token was still good: ${ok.stderr}`);
});

test("a reused token is refused by the CA: exit 4 listing the usual causes, nothing written", async () => {
  const root = tempRoot("nj-step-");
  const tokens = await workerTokens("w5");
  const first = await runCli(workerArgs(root, "w5", []), {
    env: { NODE_JOIN_CA_TOKEN: tokens.join(" ") },
  });
  assert.equal(first.code, 0, first.stderr);
  const other = tempRoot("nj-step-");
  const r = await expectFailure(
    workerArgs(other, "w5", []),
    4,
    /CA kubernetes \(step-ca https:\/\/127\.0\.0\.1:\d+\) signing kubelet-\w+: the one-time token \d from NODE_JOIN_CA_TOKEN was refused \(HTTP 401; step-ca logs the reason.*already used.*expired.*audience.*CN or SANs differ/,
    other,
    { NODE_JOIN_CA_TOKEN: tokens.join(" ") },
  );
  assert.ok(!r.stderr.includes(tokens[0]!), "the token is not printed");
  assert.match(stepCaLog(k8s), /token already used/);
});

test("a token for another node is not sent: exit 2 naming what it is for; expired and foreign tokens likewise", async () => {
  const root = tempRoot("nj-step-");
  const tokens = [
    await k8s.mintToken("workers", "system:node:other", SERVER_SANS("w6")),
    await k8s.mintToken("workers", "system:node:other", []),
  ];
  const file = secretFile(root, "ca.tokens", tokens.join("\n"));
  const signs = requests(k8s, "/1.0/sign");
  await expectFailure(
    workerArgs(root, "w6", ["--ca-token-file", file]),
    2,
    /no one-time token for kubelet-client \(CN system:node:w6, no SANs\); kubelet-server .* \(it holds: token 1: system:node:other \[w6, w6\.lab, 10\.0\.0\.21, 2001:db8::21\]; token 2: system:node:other\)/,
    root,
  );
  const foreign = await fpCa.mintToken("front-proxy", "system:node:w6", []);
  writeFileSync(file, foreign);
  await expectFailure(
    workerArgs(root, "w6", ["--ca-token-file", file]),
    2,
    /token 1: system:node:w6, minted for another CA \(root fingerprint [0-9a-f]{64}\)/,
    root,
  );
  writeFileSync(file, await k8s.mintToken("workers", "system:node:w6", [], { ttl: "1s" }));
  await new Promise((r) => setTimeout(r, 1500));
  await expectFailure(
    workerArgs(root, "w6", ["--ca-token-file", file]),
    2,
    /token 1: system:node:w6, expired at \d{4}-/,
    root,
  );
  assert.equal(requests(k8s, "/1.0/sign"), signs, "nothing reached the CA");
});

test("a wrong root fingerprint is refused before anything but the root download (exit 5)", async () => {
  const root = tempRoot("nj-step-");
  const pw = secretFile(root, "workers.password", password(k8s, "workers"));
  const args = workerArgs(root, "w7", ["--ca-provisioner", "workers", "--ca-password-file", pw]);
  const [signs, provs] = [requests(k8s, "/1.0/sign"), requests(k8s, "/provisioners")];
  const unknown = "0".repeat(64);
  await expectFailure(
    args.map((a) => (a === k8s.rootFingerprint ? unknown : a)),
    5,
    new RegExp(
      `the CA has no root with fingerprint ${unknown}: wrong --ca-fingerprint or wrong CA URL`,
    ),
    root,
  );
  // Another CA's root fingerprint: this server does not have it either.
  await expectFailure(
    args.map((a) => (a === k8s.rootFingerprint ? fpCa.rootFingerprint : a)),
    5,
    /has no root with fingerprint/,
    root,
  );
  // The right fingerprint at another CA's URL.
  await expectFailure(
    args.map((a) => (a === k8s.url ? fpCa.url : a)),
    5,
    /has no root with fingerprint/,
    root,
  );
  assert.deepEqual(
    [requests(k8s, "/1.0/sign"), requests(k8s, "/provisioners")],
    [signs, provs],
    "nothing but /root was asked",
  );
});

test("a wrong provisioner password fails to decrypt its key locally: exit 2, no CSR sent", async () => {
  const root = tempRoot("nj-step-");
  const pw = secretFile(root, "workers.password", "not-the-password");
  const signs = requests(k8s, "/1.0/sign");
  await expectFailure(
    workerArgs(root, "w8", ["--ca-provisioner", "workers", "--ca-password-file", pw]),
    2,
    /cannot decrypt the key of provisioner "workers" with the password from .*workers\.password: wrong password .*no CSR was sent/,
    root,
  );
  await expectFailure(
    workerArgs(root, "w8", ["--ca-provisioner", "nobody", "--ca-password-file", pw]),
    2,
    /no JWK provisioner "nobody" \(--ca-provisioner\); the CA has: workers, control-plane/,
    root,
  );
  await expectFailure(
    workerArgs(root, "w8", []),
    2,
    /no enrolment secret: give one one-time token per certificate \(--ca-token-file, one per line, or NODE_JOIN_CA_TOKEN\)/,
    root,
  );
  const open = secretFile(root, "open.password", password(k8s, "workers"));
  execFileSync("chmod", ["0644", open]);
  await expectFailure(
    workerArgs(root, "w8", ["--ca-provisioner", "workers", "--ca-password-file", open]),
    2,
    /step-ca provisioner password file .*open\.password is readable by group or others/,
    root,
  );
  assert.equal(requests(k8s, "/1.0/sign"), signs);
});

// ---- control plane
// -------------------------------------------------------------------------------

/**
 * A root as cloud-init would leave it: one provisioner password per CA and the cluster's sa pair.
 */
function prepareCpRoot(): string {
  const root = tempRoot("nj-step-cp-");
  secretFile(root, "kubernetes-ca.password", password(k8s, "control-plane"));
  secretFile(root, "front-proxy-ca.password", password(fpCa, "front-proxy"));
  secretFile(root, "etcd-ca.password", password(etcdCa, "etcd"));
  copyFileSync(join(saDir, "sa.key"), join(root, "etc/node-join/sa.key"));
  copyFileSync(join(saDir, "sa.pub"), join(root, "etc/node-join/sa.pub"));
  return root;
}

function cpArgs(root: string, name: string, ip: string): string[] {
  const etc = join(root, "etc/node-join");
  return kubeadmJoin(root, name, ip, {
    ...stepCaFlags(k8s, "control-plane", join(etc, "kubernetes-ca.password")),
    ...stepCaFlags(fpCa, "front-proxy", join(etc, "front-proxy-ca.password"), "front-proxy-"),
    ...stepCaFlags(etcdCa, "etcd", join(etc, "etcd-ca.password"), "etcd-"),
  });
}

const pki = (root: string, f: string) => join(root, "etc/kubernetes/pki", f);
const sorted = (a: string[]) => [...a].sort();

test("three control planes join through three step-ca CAs, one provisioner each", async () => {
  for (const n of NODES) {
    n.root = prepareCpRoot();
    const r = await runCli([...cpArgs(n.root, n.name, n.ip), "--json"]);
    assert.equal(r.code, 0, `join ${n.name}: ${r.stderr}`);
    assert.equal(json<{ issued: unknown[] }>(r).issued.length, 13);
  }
  const caFiles = new Map([
    [k8s, "ca.crt"],
    [fpCa, "front-proxy-ca.crt"],
    [etcdCa, "etcd/ca.crt"],
  ]);
  for (const n of NODES) {
    for (const [h, f] of caFiles)
      assert.equal(
        readFileSync(pki(n.root, f), "utf8").trim(),
        h.rootPem.trim(),
        `${n.name} ${f} is that CA's root`,
      );
    for (const k of kubeadmExpectations(n.name, n.ip)) {
      const e = { ...k, ca: { ca: k8s, "front-proxy-ca": fpCa, "etcd-ca": etcdCa }[k.ca] };
      const pem = readFileSync(pki(n.root, e.file), "utf8");
      const where = `${n.name} ${e.file}`;
      const certs = pem.match(CERT_BLOCK) ?? [];
      assert.equal(certs.length, 2, `${where}: leaf then intermediate, as kubeadm reads it`);
      assert.equal(certs[1]!.trim(), e.ca.intermediatePem.trim(), where);
      const c = opensslInfo(pem);
      assert.equal(c.cn, e.cn, where);
      assert.deepEqual(sorted(c.o), sorted(e.o), where);
      assert.ok(c.ekus.includes(e.ekus[0]!), where);
      assert.deepEqual(sorted(c.dns), sorted(e.dns), where);
      assert.deepEqual(sorted(c.ips), sorted(e.ips), where);
      const own = caFiles.get(e.ca)!;
      assert.ok(opensslVerifies(pem, pki(n.root, own)), `${where} chains to ${own}`);
      for (const other of [...caFiles.values()].filter((f) => f !== own))
        assert.ok(!opensslVerifies(pem, pki(n.root, other)), `${where} must not chain to ${other}`);
    }
    const kubelet = checkKubeletPem(n.root, "kubelet-client");
    assert.deepEqual(
      kubelet.o,
      ["system:nodes"],
      "the control-plane provisioner keeps the CSR's O",
    );
    const admin = execFileSync("kubectl", [
      "--kubeconfig",
      join(n.root, "etc/kubernetes/super-admin.conf"),
      "config",
      "view",
      "--raw",
      "-o",
      "jsonpath={.users[0].user.client-certificate-data}",
    ]).toString();
    assert.deepEqual(opensslInfo(Buffer.from(admin, "base64").toString()).o, ["system:masters"]);
  }
});

test("a three-member etcd cluster runs on the step-ca certificates; a kubernetes-CA client is refused", async () => {
  assert.ok(
    NODES.every((n) => n.root),
    "the control planes joined",
  );
  cluster = await startEtcdCluster(NODES);
  const root = NODES[0]!.root;
  await assertEtcdHealthy(cluster, root);
  await assertEtcdClients(cluster, [root, NODES[1]!.root, NODES[2]!.root], "step-ca");
});

test("a single step-ca serves all three CAs when only the kubernetes CA is configured", async () => {
  const root = prepareCpRoot();
  const etc = join(root, "etc/node-join");
  const r = await runCli(
    stepControlPlaneJoin(root, k8s, join(etc, "kubernetes-ca.password"), { json: true }),
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json<{ issued: unknown[] }>(r).issued.length, 13);
  for (const f of ["ca.crt", "front-proxy-ca.crt", "etcd/ca.crt"])
    assert.equal(readFileSync(pki(root, f), "utf8").trim(), k8s.rootPem.trim(), f);
  assert.ok(
    opensslVerifies(
      readFileSync(pki(root, "front-proxy-client.crt"), "utf8"),
      pki(root, "front-proxy-ca.crt"),
    ),
  );
});
