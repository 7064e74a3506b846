// A CA moved to a new key with an overlap (issue 14), against real CFSSL servers: a worker goes
// through the three phases of the README's runbook (trust both, switch the signer, retire the old
// CA) with `openssl verify -CAfile ca.crt` of its certificates after each phase, and a TLS
// handshake between a certificate of the old CA and one of the new CA during the overlap; and the
// etcd CA of two control planes with a real etcd cluster after each phase.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin, CONTROL_PLANE_AUTH_KEYS } from "../../scripts/lib/args.js";
import { opensslPin, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { etcdctl, startEtcdCluster } from "../helpers/etcd.js";
import { json, runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { opensslVerifies } from "../helpers/openssl.js";
import {
  bundleCns,
  certsOf,
  handshake,
  issuerOf,
  joinControlPlane,
  newCaKey,
  saKeyDir,
  startClusterCas,
  trustAdd,
} from "../helpers/rotation.js";
import { stoppedAfter } from "../helpers/fixture.js";

const started = stoppedAfter<CfsslCa>();

const PKI = "var/lib/kubelet/pki";

const pemOf = (root: string, kind: string): string =>
  readFileSync(join(root, PKI, `${kind}-current.pem`), "utf8");

test("CA rotation on a worker with real CFSSL: trust both, switch the signer, retire the old CA", async () => {
  const old = await startCfssl();
  started.push(old);
  const root = tempRoot("nj-rotation-");
  const keyFile = old.installAuthKey(root);
  const j = await runCli(cfsslWorkerJoin(root, old, { "ca-auth-key-file": keyFile }));
  assert.equal(j.code, 0, j.stderr);
  const caCrt = join(root, "etc/kubernetes/pki/ca.crt");
  const next = newCaKey("kubernetes-2");
  const nextPin = opensslPin(next.cert);
  const verifiesAll = (what: string) => {
    for (const kind of ["kubelet-client", "kubelet-server"])
      assert.ok(opensslVerifies(pemOf(root, kind), caCrt), `${what}: openssl verify ${kind}`);
  };
  verifiesAll("joined");

  // Phase 1: trust both. The CA still signs with the old key and sends only its certificate.
  const add = await trustAdd(root, "kubernetes", next.cert);
  assert.equal(add.code, 0, add.stderr);
  assert.equal(
    add.stdout.split("\n")[0],
    `CA kubernetes: trusting ${nextPin}; its bundle holds 2 certificate(s)`,
  );
  assert.deepEqual(bundleCns(caCrt), ["kubernetes", "kubernetes-2"]);
  verifiesAll("phase 1");
  const list = json<{ cas: { pins: { pin: string; inBundle: boolean }[] }[] }>(
    await runCli(["trust", "list", "--root", root, "--json"]),
  );
  assert.deepEqual(
    list.cas[0]!.pins.map((p) => [p.pin, p.inBundle]),
    [
      [old.pin, true],
      [nextPin, true],
    ],
  );
  const oldServer = pemOf(root, "kubelet-server");

  // Phase 2: switch the signer. The CA server restarts with the new key (here on another port, so
  // the node's config names the new URL, and its auth key).
  await old.stop();
  const signer = await startCfssl({ ca: next });
  started.push(signer);
  signer.installAuthKey(root);
  const cfg = join(root, "etc/node-join/config.yaml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace(old.url, signer.url));
  // Retiring the old CA now is refused: both certificates chain only to it.
  const early = await runCli([
    ...["trust", "remove", "--root", root, "--ca", "kubernetes"],
    ...["--ca-cert-hash", old.pin],
  ]);
  assert.equal(early.code, 2);
  assert.match(
    early.stderr,
    /^node-join: error: CA kubernetes: kubelet-client \(.*kubelet-client-current\.pem\), kubelet-server \(.*\) chains only to the CA certificate of sha256:[0-9a-f]{64}: renew it against the new signer first/,
  );
  const renewed = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(renewed.code, 0, renewed.stderr);
  assert.deepEqual(bundleCns(caCrt), ["kubernetes-2", "kubernetes"], "the current signer first");
  assert.equal(issuerOf(pemOf(root, "kubelet-client")), "CN = kubernetes-2");
  verifiesAll("phase 2");
  assert.ok(opensslVerifies(oldServer, caCrt), "the old CA's certificate still verifies");
  // The overlap: a server with the old CA's certificate and a client with the new CA's.
  await handshake(oldServer, pemOf(root, "kubelet-client"), caCrt);
  await handshake(pemOf(root, "kubelet-server"), pemOf(root, "kubelet-client"), caCrt);

  // Phase 3: retire the old CA.
  const removed = await runCli([
    ...["trust", "remove", "--root", root, "--ca", "kubernetes"],
    ...["--ca-cert-hash", old.pin],
  ]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(
    removed.stdout.split("\n")[0],
    `CA kubernetes: no longer trusting ${old.pin}; its bundle holds 1 certificate(s)`,
  );
  assert.deepEqual(bundleCns(caCrt), ["kubernetes-2"]);
  verifiesAll("phase 3");
  assert.ok(!opensslVerifies(oldServer, caCrt), "the old CA's certificate is no longer trusted");
  const again = await runCli(["renew", "--root", root, "--json"]);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(json<{ changedFiles: string[] }>(again).changedFiles, []);
});

test("CA rotation of the etcd CA on two control planes: a real etcd cluster works after each phase, members of the old and the new CA side by side", async () => {
  const cas = await startClusterCas(started);
  const oldEtcd = cas.etcd;
  const saDir = saKeyDir();
  const nodes = [
    { name: "cp1", ip: "127.0.0.11", root: tempRoot("nj-cp-rot-") },
    { name: "cp2", ip: "127.0.0.12", root: tempRoot("nj-cp-rot-") },
  ];
  for (const n of nodes) await joinControlPlane(n, cas, saDir);
  const etcdCa = (root: string) => join(root, "etc/kubernetes/pki/etcd/ca.crt");
  /** A fresh etcd cluster from the nodes' current files: healthy, and a put read back. */
  const etcdWorks = async (phase: string) => {
    const cluster = await startEtcdCluster(nodes);
    try {
      const put = await etcdctl(nodes[0]!.root, "apiserver-etcd-client", cluster.endpoints, [
        ...["put", "/registry/rotation", phase],
      ]);
      assert.equal(put.code, 0, `${phase}: ${put.out}`);
      const get = await etcdctl(nodes[1]!.root, "apiserver-etcd-client", cluster.endpoints, [
        ...["get", "/registry/rotation", "--print-value-only"],
      ]);
      assert.equal(get.out.trim(), phase);
    } finally {
      await cluster.stop();
    }
  };
  await etcdWorks("joined");

  // Phase 1: trust both on every node.
  const next = newCaKey("etcd-ca-2");
  for (const n of nodes) {
    const add = await trustAdd(n.root, "etcd", next.cert);
    assert.equal(add.code, 0, add.stderr);
    assert.deepEqual(bundleCns(etcdCa(n.root)), ["etcd-ca", "etcd-ca-2"]);
  }
  await etcdWorks("phase 1");

  // Phase 2: the etcd CA signs with the new key; cp1 renews, cp2 keeps the old CA's certificates.
  await oldEtcd.stop();
  const signer = await startCfssl({ ca: next });
  started.push(signer);
  for (const n of nodes) {
    signer.writeAuthKey(join(n.root, "etc/node-join", CONTROL_PLANE_AUTH_KEYS.etcd));
    const cfg = join(n.root, "etc/node-join/config.yaml");
    writeFileSync(cfg, readFileSync(cfg, "utf8").replace(oldEtcd.url, signer.url));
  }
  const renewed = await runCli(["renew", "--root", nodes[0]!.root, "--force"]);
  assert.equal(renewed.code, 0, renewed.stderr);
  const peer = (root: string) =>
    readFileSync(join(root, "etc/kubernetes/pki/etcd/peer.crt"), "utf8");
  assert.equal(issuerOf(peer(nodes[0]!.root)), "CN = etcd-ca-2");
  assert.equal(issuerOf(peer(nodes[1]!.root)), "CN = etcd-ca");
  for (const n of nodes)
    for (const f of ["server", "peer", "healthcheck-client"])
      assert.ok(
        opensslVerifies(
          readFileSync(join(n.root, `etc/kubernetes/pki/etcd/${f}.crt`), "utf8"),
          etcdCa(nodes[0]!.root),
        ),
        `${n.name} etcd/${f}.crt`,
      );
  await etcdWorks("phase 2");

  // Phase 3: cp2 renews as part of retiring the old CA; both drop it.
  for (const n of nodes) {
    const rm = await runCli([
      ...["trust", "remove", "--root", n.root, "--ca", "etcd"],
      ...["--ca-cert-hash", oldEtcd.pin, "--renew"],
    ]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual(bundleCns(etcdCa(n.root)), ["etcd-ca-2"]);
  }
  assert.equal(issuerOf(peer(nodes[1]!.root)), "CN = etcd-ca-2");
  await etcdWorks("phase 3");
});

test("CFSSL serving the new key cross-signed by the old CA: the node trusts it by that signature, then its self-signed twin once pinned", async () => {
  const old = await startCfssl();
  started.push(old);
  const root = tempRoot("nj-rotation-cross-");
  const j = await runCli(
    cfsslWorkerJoin(root, old, { "ca-auth-key-file": old.installAuthKey(root) }),
  );
  assert.equal(j.code, 0, j.stderr);
  const caCrt = join(root, "etc/kubernetes/pki/ca.crt");
  // CA side, as the README's runbook: a new key, cross-signed by the old CA, then served.
  const next = newCaKey("kubernetes-2");
  const dir = join(next.cert, "..");
  writeFileSync(
    join(dir, "ca-config.json"),
    JSON.stringify({
      signing: {
        default: { expiry: "8760h" },
        profiles: {
          ca: {
            expiry: "87600h",
            usages: ["cert sign", "crl sign"],
            ca_constraint: { is_ca: true },
          },
        },
      },
    }),
  );
  execFileSync("sh", [
    "-c",
    `cd '${dir}' && cfssl sign -ca '${old.caCertFile}' -ca-key '${old.caKeyFile}' -config ca-config.json -profile ca new-ca.csr 2>/dev/null | cfssljson -bare new-ca-cross`,
  ]);
  const cross = join(dir, "new-ca-cross.pem");
  await old.stop();
  const signer = await startCfssl({ ca: { cert: cross, key: next.key } });
  started.push(signer);
  signer.installAuthKey(root);
  const cfg = join(root, "etc/node-join/config.yaml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace(old.url, signer.url));

  // No pin changed on the node: the cross-signed certificate is trusted by the old CA's signature.
  const renewed = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(renewed.code, 0, renewed.stderr);
  const bundle = () => certsOf(readFileSync(caCrt, "utf8"));
  assert.equal(bundle()[0], readFileSync(cross, "utf8").trim() + "\n");
  assert.deepEqual(bundleCns(caCrt), ["kubernetes-2", "kubernetes"]);
  for (const kind of ["kubelet-client", "kubelet-server"]) {
    assert.equal(issuerOf(pemOf(root, kind)), "CN = kubernetes-2");
    assert.ok(opensslVerifies(pemOf(root, kind), caCrt), `cross-signed: openssl verify ${kind}`);
  }
  // Pinning the new key with its self-signed certificate puts that one in the bundle instead.
  const add = await trustAdd(root, "kubernetes", next.cert);
  assert.equal(add.code, 0, add.stderr);
  assert.equal(bundle()[0], readFileSync(next.cert, "utf8").trim() + "\n");
  assert.deepEqual(bundleCns(caCrt), ["kubernetes-2", "kubernetes"]);
  const removed = await runCli([
    ...["trust", "remove", "--root", root, "--ca", "kubernetes"],
    ...["--ca-cert-hash", old.pin],
  ]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.deepEqual(bundle(), [readFileSync(next.cert, "utf8").trim() + "\n"]);
  for (const kind of ["kubelet-client", "kubelet-server"])
    assert.ok(opensslVerifies(pemOf(root, kind), caCrt), `retired: openssl verify ${kind}`);
});
