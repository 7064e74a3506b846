// A CA moved to a new key with an overlap (issue 14), as a user drives it: `node-join` in process
// against an in-process CA that checks the node's pins exactly as the real backends do
// (authenticateCa), on a fake clock. The trusted bundle in ca.crt and the kubeconfig follows the
// pins through the three phases; the end-to-end test (test/e2e/ca-rotation.test.ts) does the same
// against real CFSSL servers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import type { RuntimeSeams } from "../../agent/cli/context.js";
import { authenticateCa } from "../../agent/ca/trust.js";
import { certPin, parseCert, splitPemCertificates } from "../../agent/pki/x509.js";
import { FakeCa, fakeClock } from "../helpers/fake-ca.js";
import { tempRoot } from "../helpers/fs.js";
import { cli, DAY, kubeletLeaf, type Out } from "../helpers/joined.js";
import { makeCa, type TestCa } from "../helpers/pki.js";

interface Rotating {
  root: string;
  fake: FakeCa;
  old: TestCa;
  next: TestCa;
  clock: ReturnType<typeof fakeClock>;
  run(command: string, ...args: string[]): Promise<Out>;
}

const pinOf = (ca: TestCa): string => certPin(parseCert(ca.pem));

/** A worker joined against a CA pinned by its key; `next` is the CA's new key, not yet known. */
async function rotatingWorker(): Promise<Rotating> {
  const root = tempRoot("nj-rotation-");
  const clock = fakeClock();
  const fake = await FakeCa.create("kubernetes", clock);
  const old = fake.ca;
  const seams: RuntimeSeams = {
    clock,
    backend: (ctx) => ({
      description: fake.description,
      fetchCaBundle: async () =>
        authenticateCa(ctx.ca, await fake.fetchCaBundle(), ctx.settings, false, "CA", ctx.log),
      sign: (r) => fake.sign(r),
    }),
  };
  const join_ = await cli(
    [
      ...["join", "--root", root, "--api-server", "https://10.0.0.1:6443"],
      ...["--ca-url", "http://ca.invalid:8888", "--ca-cert-hash", pinOf(old)],
      ...["--node-name", "w1", "--ip", "10.0.0.21", "--no-timer"],
    ],
    seams,
  );
  assert.equal(join_.code, 0, join_.stderr);
  return {
    root,
    fake,
    old,
    next: await makeCa("kubernetes-ca-2"),
    clock,
    run: (command, ...a) => cli([command, "--root", root, ...a], seams),
  };
}

/** Sets the kubernetes CA's pins in the node's config, as an operator edits it. */
function setPins(root: string, pins: string[]): void {
  const file = join(root, "etc/node-join/config.yaml");
  const doc = YAML.parse(readFileSync(file, "utf8")) as { cas: { kubernetes: object } };
  doc.cas.kubernetes = { ...doc.cas.kubernetes, certHashes: pins };
  writeFileSync(file, YAML.stringify(doc));
}

const caCrt = (root: string): string =>
  readFileSync(join(root, "etc/kubernetes/pki/ca.crt"), "utf8");

/** The certificate-authority-data of the kubelet's kubeconfig, decoded. */
function kubeconfigCa(root: string): string {
  const text = readFileSync(join(root, "etc/kubernetes/kubelet.conf"), "utf8");
  const data = /certificate-authority-data: (\S+)/.exec(text)?.[1];
  assert.ok(data, text);
  return Buffer.from(data, "base64").toString("utf8");
}

/** The CN of each certificate of a PEM bundle, in order. */
const cns = (pem: string): string[] =>
  splitPemCertificates(pem).map((p) => parseCert(p).commonName);

test("rotation: a pinned new CA joins the bundle, the signer switches, the old CA retires", async () => {
  const n = await rotatingWorker();
  assert.deepEqual(cns(caCrt(n.root)), ["kubernetes-ca"]);

  // The server offers the new CA before the node pins it: not trusted, nothing written.
  n.fake.alsoServed = [n.next];
  const unpinned = await n.run("renew", "--json");
  assert.equal(unpinned.code, 0, unpinned.stderr);
  assert.deepEqual((JSON.parse(unpinned.stdout) as { changedFiles: string[] }).changedFiles, []);
  assert.deepEqual(cns(caCrt(n.root)), ["kubernetes-ca"]);

  // Phase 1, trust both: the new pin makes the server's new certificate part of the bundle.
  setPins(n.root, [pinOf(n.old), pinOf(n.next)]);
  const trustBoth = await n.run("renew", "--json");
  assert.equal(trustBoth.code, 0, trustBoth.stderr);
  assert.deepEqual(
    (JSON.parse(trustBoth.stdout) as { changedFiles: string[] }).changedFiles.map((f) =>
      f.slice(n.root.length),
    ),
    ["/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/kubelet.conf"],
  );
  assert.equal(caCrt(n.root), n.old.pem + n.next.pem);
  assert.equal(kubeconfigCa(n.root), n.old.pem + n.next.pem);
  assert.equal(statSync(join(n.root, "etc/kubernetes/pki/ca.crt")).mode & 0o777, 0o644);
  const again = await n.run("renew", "--json");
  assert.deepEqual(
    (JSON.parse(again.stdout) as { changedFiles: string[] }).changedFiles,
    [],
    "an unchanged bundle is not written again",
  );

  // Phase 2, switch the signer: the server signs with and serves only the new CA; the old one
  // stays trusted while pinned, the current signer first.
  n.fake.ca = n.next;
  n.fake.alsoServed = [];
  const switched = await n.run("renew", "--force");
  assert.equal(switched.code, 0, switched.stderr);
  assert.equal(caCrt(n.root), n.next.pem + n.old.pem);
  assert.equal(kubeletLeaf(n.root, "kubelet-client").issuerCommonName, "kubernetes-ca-2");

  // Phase 3, retire the old CA: its pin removed, the bundle drops it.
  setPins(n.root, [pinOf(n.next)]);
  const retired = await n.run("renew");
  assert.equal(retired.code, 0, retired.stderr);
  assert.equal(caCrt(n.root), n.next.pem);
  assert.equal(kubeconfigCa(n.root), n.next.pem);
});

test("rotation: a leaf that chains only to a CA whose pin was removed is renewed by the new signer in the same run", async () => {
  const n = await rotatingWorker();
  setPins(n.root, [pinOf(n.old), pinOf(n.next)]);
  n.fake.alsoServed = [n.next];
  assert.equal((await n.run("renew")).code, 0);
  n.fake.ca = n.next;
  n.fake.alsoServed = [];
  setPins(n.root, [pinOf(n.next)]);
  const r = await n.run("renew", "--json");
  assert.equal(r.code, 0, r.stderr);
  const renewed = (JSON.parse(r.stdout) as { renewed: { kind: string; reason: string }[] }).renewed;
  assert.deepEqual(
    renewed.map((x) => [x.kind, x.reason]),
    [
      ["kubelet-client", "does not chain to the installed CA"],
      ["kubelet-server", "does not chain to the installed CA"],
    ],
  );
  assert.equal(caCrt(n.root), n.next.pem);
  assert.equal(kubeletLeaf(n.root, "kubelet-server").issuerCommonName, "kubernetes-ca-2");
});

test("renew: an unreachable CA with nothing due is a warning, exit 0, the installed bundle kept", async () => {
  const n = await rotatingWorker();
  const before = caCrt(n.root);
  n.fake.failure = { mode: "down" };
  const r = await n.run("renew");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^nothing to renew; next renewal: kubelet-(client|server) at /);
  assert.equal(
    r.stderr,
    "node-join: WARNING: CA kubernetes (fake) unreachable: connection refused; kept the installed CA bundle (nothing of it is due)\n",
  );
  assert.equal(caCrt(n.root), before);
  // With something due the same CA fails the run, as before (exit 3).
  n.clock.advance(360 * DAY);
  const due = await n.run("renew");
  assert.equal(due.code, 3);
});
