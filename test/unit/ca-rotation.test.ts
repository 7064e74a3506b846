// A CA moved to a new key with an overlap (issue 14), as a user drives it: `node-join` in process
// against an in-process CA that checks the node's pins exactly as the real backends do
// (authenticateCa), on a fake clock. The trusted bundle in ca.crt and the kubeconfig follows the
// pins through the three phases; the end-to-end test (test/e2e/ca-rotation.test.ts) does the same
// against real CFSSL servers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import YAML from "yaml";
import type { RuntimeSeams } from "../../agent/cli/context.js";
import { authenticateCa, loadPemFile, trustedBundle } from "../../agent/ca/trust.js";
import { pinnedBy } from "../../agent/engine/report.js";
import { certFingerprint, certPin, parseCert, splitPemCertificates } from "../../agent/pki/x509.js";
import { FakeCa, fakeClock } from "../helpers/fake-ca.js";
import { tempRoot } from "../helpers/fs.js";
import { cli, DAY, iso, kubeletLeaf, type Out } from "../helpers/joined.js";
import { makeCa, type TestCa } from "../helpers/pki.js";
import { assertKubeletRenewed } from "../helpers/expect.js";

interface Rotating {
  root: string;
  fake: FakeCa;
  /** The pinned CA certificate: the fake's signer, or the root above it (`underRoot`). */
  old: TestCa;
  next: TestCa;
  /**
   * Set (by `underRoot`): the CA serves these roots and signs with fake.ca, an intermediate under
   * one of them, which it names as its current signer, as step-ca does.
   */
  roots?: TestCa[];
  clock: ReturnType<typeof fakeClock>;
  run(command: string, ...args: string[]): Promise<Out>;
}

const pinOf = (ca: TestCa): string => certPin(parseCert(ca.pem));

/**
 * A worker joined against a CA pinned by its key; `next` is the CA's new key, not yet known.
 * `underRoot`: the CA signs with an intermediate under the pinned root, as step-ca does.
 */
async function rotatingWorker(underRoot = false): Promise<Rotating> {
  const root = tempRoot("nj-rotation-");
  const clock = fakeClock();
  const fake = await FakeCa.create("kubernetes", clock);
  const old = underRoot ? await makeCa("root-ca") : fake.ca;
  if (underRoot) fake.ca = await makeCa("intermediate-ca", old);
  const n: Partial<Rotating> = underRoot ? { roots: [old] } : {};
  const seams: RuntimeSeams = {
    clock,
    backend: (ctx) => ({
      description: fake.description,
      fetchCaBundle: async () =>
        authenticateCa(
          ctx.ca,
          n.roots ? n.roots.map((r) => parseCert(r.pem)) : await fake.fetchCaBundle(),
          ctx.settings,
          false,
          "CA",
          ctx.log,
          ctx.pinned,
        ),
      sign: (r) => fake.sign(r),
      currentSigner: () => (n.roots ? parseCert(fake.ca.pem) : undefined),
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
  return Object.assign(n, {
    root,
    fake,
    old,
    next: await makeCa("kubernetes-ca-2"),
    clock,
    run: (command: string, ...a: string[]) =>
      cli([...command.split(" "), "--root", root, ...a], seams),
  });
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
    // The state records what node-join wrote (the digests leave compares).
    ["/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/kubelet.conf", "/var/lib/node-join/state.json"],
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

/** The new CA's certificate in a file, as the operator copies it to the node. */
function caFileOf(n: Rotating): string {
  const file = join(n.root, "new-ca.crt");
  writeFileSync(file, n.next.pem);
  return file;
}

test("trust add --ca-file: the new CA joins the bundle from the file while the server still serves only the old one; trust list shows both", async () => {
  const n = await rotatingWorker();
  const add = await n.run("trust add", "--ca", "kubernetes", "--ca-file", caFileOf(n));
  assert.equal(add.code, 0, add.stderr);
  assert.equal(n.fake.fetches, 2, "join, then the refresh");
  const [oldCert, newCert] = [parseCert(n.old.pem), parseCert(n.next.pem)];
  const exp = (c: typeof oldCert) => c.notAfter.toISOString().replace(/\.\d{3}Z$/, "Z");
  assert.equal(
    add.stdout,
    `CA kubernetes: trusting ${pinOf(n.next)}; its bundle holds 2 certificate(s)\n` +
      `  ${pinOf(n.old)} CN=kubernetes-ca, expires ${exp(oldCert)}\n` +
      `  ${pinOf(n.next)} CN=kubernetes-ca-2, expires ${exp(newCert)}\n`,
  );
  assert.equal(caCrt(n.root), n.old.pem + n.next.pem);
  assert.equal(kubeconfigCa(n.root), n.old.pem + n.next.pem);
  const cfg = YAML.parse(readFileSync(join(n.root, "etc/node-join/config.yaml"), "utf8")) as {
    cas: { kubernetes: { certHashes: string[] } };
  };
  assert.deepEqual(cfg.cas.kubernetes.certHashes, [pinOf(n.old), pinOf(n.next)]);
  // A renew keeps the file's certificate: it is pinned, though the server does not send it.
  assert.equal((await n.run("renew")).code, 0);
  assert.equal(caCrt(n.root), n.old.pem + n.next.pem);

  const list = await n.run("trust list");
  assert.equal(list.code, 0, list.stderr);
  assert.equal(
    list.stdout,
    `CA kubernetes (${n.root}/etc/kubernetes/pki/ca.crt):\n` +
      `  ${pinOf(n.old)}\n    CN=kubernetes-ca, expires ${exp(oldCert)}; in the bundle\n` +
      `  ${pinOf(n.next)}\n    CN=kubernetes-ca-2, expires ${exp(newCert)}; in the bundle\n`,
  );
  const json = JSON.parse((await n.run("trust list", "--json")).stdout) as {
    cas: { ca: string; pins: { pin: string; inBundle: boolean }[] }[];
  };
  assert.deepEqual(
    json.cas.map((c) => [c.ca, c.pins.map((p) => [p.pin, p.inBundle])]),
    [
      [
        "kubernetes",
        [
          [pinOf(n.old), true],
          [pinOf(n.next), true],
        ],
      ],
    ],
  );
});

test("trust add --ca-cert-hash --no-refresh: the pin is persisted, no CA reached; its certificate is not known yet, and says so", async () => {
  const n = await rotatingWorker();
  const add = await n.run(
    "trust add",
    "--ca",
    "kubernetes",
    "--ca-cert-hash",
    pinOf(n.next),
    "--no-refresh",
  );
  assert.equal(add.code, 0, add.stderr);
  assert.equal(n.fake.fetches, 1, "only join reached the CA");
  assert.equal(
    add.stdout.split("\n")[0],
    `CA kubernetes: trusting ${pinOf(n.next)}; its bundle holds 1 certificate(s); no certificate of ${pinOf(n.next)} is known yet (the CA server does not send it: give --ca-file, or run node-join renew once it does)`,
  );
  const list = await n.run("trust list");
  assert.match(list.stdout, /no certificate known on this node yet; not in the bundle\n$/);
  // The server sends it: the next renew puts it into the bundle.
  n.fake.alsoServed = [n.next];
  assert.equal((await n.run("renew")).code, 0);
  assert.equal(caCrt(n.root), n.old.pem + n.next.pem);
});

test("trust remove refuses (exit 2, naming the leaves) while a leaf chains only to the CA being retired; --renew renews them first", async () => {
  const n = await rotatingWorker();
  assert.equal((await n.run("trust add", "--ca", "kubernetes", "--ca-file", caFileOf(n))).code, 0);
  n.fake.ca = n.next;
  const config = readFileSync(join(n.root, "etc/node-join/config.yaml"), "utf8");
  const refused = await n.run("trust remove", "--ca", "kubernetes", "--ca-cert-hash", pinOf(n.old));
  assert.equal(refused.code, 2);
  const pki = `${n.root}/var/lib/kubelet/pki`;
  assert.equal(
    refused.stderr,
    `node-join: error: CA kubernetes: kubelet-client (${pki}/kubelet-client-current.pem), kubelet-server (${pki}/kubelet-server-current.pem) chains only to the CA certificate of ${pinOf(n.old)}: renew it against the new signer first (node-join trust remove --renew), or wait until node-join renew has renewed them from the new CA, then remove the pin\n`,
  );
  assert.equal(readFileSync(join(n.root, "etc/node-join/config.yaml"), "utf8"), config);
  const unknown = await n.run(
    "trust remove",
    "--ca",
    "kubernetes",
    "--ca-cert-hash",
    `sha256:${"0".repeat(64)}`,
  );
  assert.equal(unknown.code, 2);
  assert.equal(
    unknown.stderr,
    `node-join: error: sha256:${"0".repeat(64)} is not a --ca-cert-hash of CA kubernetes (config key cas.kubernetes.certHashes): node-join trust list shows the pins\n`,
  );

  const r = await n.run(
    "trust remove",
    "--ca",
    "kubernetes",
    "--ca-cert-hash",
    pinOf(n.old),
    "--renew",
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout.split("\n")[0],
    `CA kubernetes: no longer trusting ${pinOf(n.old)}; renewed kubelet-client, kubelet-server first; its bundle holds 1 certificate(s)`,
  );
  assert.equal(caCrt(n.root), n.next.pem);
  assert.equal(kubeconfigCa(n.root), n.next.pem);
  assert.equal(kubeletLeaf(n.root, "kubelet-client").issuerCommonName, "kubernetes-ca-2");
  assert.equal(kubeletLeaf(n.root, "kubelet-server").issuerCommonName, "kubernetes-ca-2");
});

test("trust: a CA the role does not trust, or neither pin nor file, is exit 2 naming the flag", async () => {
  const n = await rotatingWorker();
  const etcd = await n.run("trust add", "--ca", "etcd", "--ca-cert-hash", pinOf(n.next));
  assert.equal(etcd.code, 2);
  assert.equal(
    etcd.stderr,
    "node-join: error: --ca etcd: a worker node does not trust the etcd CA\n",
  );
  const none = await n.run("trust add", "--ca", "kubernetes");
  assert.equal(none.code, 2);
  assert.equal(
    none.stderr,
    "node-join: error: give exactly one of --ca-cert-hash sha256:<hex> and --ca-file <pem>\n",
  );
});

type Renewed = { kind: string; reason: string }[];

/**
 * renew.onSignerChange early over a 2d window: the new CA trusted (its file), `switchSigner` run,
 * a renew that renews nothing and records `signer` as the CA's new signer; then 2d later a renew.
 * When the node first saw the signer, and what the second renew renewed.
 */
async function earlyRenewals(
  n: Rotating,
  switchSigner: () => Promise<void>,
  signer: TestCa,
): Promise<{ seenAt: number; renewed: Renewed }> {
  const file = join(n.root, "etc/node-join/config.yaml");
  writeFileSync(
    file,
    `${readFileSync(file, "utf8")}renew:\n  onSignerChange: early\n  signerChangeWindow: 2d\n`,
  );
  assert.equal((await n.run("trust add", "--ca", "kubernetes", "--ca-file", caFileOf(n))).code, 0);
  await switchSigner();
  const seenAt = n.clock.now();
  const first = await n.run("renew", "--json");
  assert.equal(first.code, 0, first.stderr);
  const r1 = JSON.parse(first.stdout) as { renewed: unknown[]; nextDeadline: string };
  assert.deepEqual(r1.renewed, [], "spread over the window, not at once");
  const next = Date.parse(r1.nextDeadline);
  assert.ok(next >= seenAt - 1000 && next < seenAt + 2 * DAY, r1.nextDeadline);
  const state = JSON.parse(readFileSync(join(n.root, "var/lib/node-join/state.json"), "utf8")) as {
    signers: Record<string, { pin: string; seenAt: string }>;
  };
  assert.equal(state.signers.kubernetes!.pin, pinOf(signer));
  // The window counts from the first sight, not from each run.
  n.clock.advance(2 * DAY);
  const second = await n.run("renew", "--json");
  assert.equal(second.code, 0, second.stderr);
  return { seenAt, renewed: (JSON.parse(second.stdout) as { renewed: Renewed }).renewed };
}

test("renew.onSignerChange early: certificates of the retiring signer fall due within the window from the run that first sees the new signer", async () => {
  const n = await rotatingWorker();
  const { seenAt, renewed } = await earlyRenewals(
    n,
    async () => {
      n.fake.ca = n.next;
    },
    n.next,
  );
  assertKubeletRenewed(
    renewed,
    new RegExp(
      `^signed by a retiring CA: the CA signs with "kubernetes-ca-2" since ${iso(new Date(seenAt)).replace(/:\d\dZ$/, "")}:\\d\\dZ \\(renew\\.onSignerChange: early, due at \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\)$`,
    ),
  );
  assert.equal(kubeletLeaf(n.root, "kubelet-client").issuerCommonName, "kubernetes-ca-2");
});

test("renew.onSignerChange early with a CA that signs with an intermediate under its roots (step-ca): the current signer is the backend's, not the first root", async () => {
  const n = await rotatingWorker(true);
  const intermediate = await makeCa("intermediate-ca-2", n.next);
  // The CA serves both roots, the old one first, and signs with a new intermediate under the new.
  const { renewed } = await earlyRenewals(
    n,
    async () => {
      n.roots = [n.old, n.next];
      n.fake.ca = intermediate;
    },
    intermediate,
  );
  assert.deepEqual(
    renewed.map((x) => [
      x.kind,
      /^signed by a retiring CA: the CA signs with "([^"]+)"/.exec(x.reason)?.[1],
    ]),
    [
      ["kubelet-client", "intermediate-ca-2"],
      ["kubelet-server", "intermediate-ca-2"],
    ],
  );
  assert.equal(kubeletLeaf(n.root, "kubelet-client").issuerCommonName, "intermediate-ca-2");
  assert.deepEqual(cns(caCrt(n.root)), ["root-ca", "kubernetes-ca-2"]);
});

test("renew.onSignerChange default (deadline): a signer switch alone makes nothing due", async () => {
  const n = await rotatingWorker();
  assert.equal((await n.run("trust add", "--ca", "kubernetes", "--ca-file", caFileOf(n))).code, 0);
  n.fake.ca = n.next;
  n.clock.advance(30 * DAY);
  const r = await n.run("renew", "--json");
  assert.deepEqual((JSON.parse(r.stdout) as { renewed: unknown[] }).renewed, []);
});

/** `ca`'s key and subject in a certificate signed by `by`: the new CA cross-signed by the old. */
async function crossSigned(ca: TestCa, by: TestCa): Promise<TestCa> {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "0c",
    subject: ca.cert.subject,
    issuer: by.cert.subject,
    notBefore: ca.cert.notBefore,
    notAfter: ca.cert.notAfter,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    publicKey: ca.keys.publicKey,
    signingKey: by.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    ],
  });
  return { cert, pem: cert.toString("pem") + "\n", keys: ca.keys };
}

test("a new CA cross-signed by the pinned one, served by the CA, is trusted by that signature and joins the bundle; an unrelated one is refused (exit 5)", async () => {
  const n = await rotatingWorker();
  // The CA server switches to the new key and serves its certificate cross-signed by the old CA
  // (cfssl serve -ca cross-signed.pem -ca-key new-key.pem): no pin on the node changed.
  const cross = await crossSigned(n.next, n.old);
  n.fake.ca = cross;
  const r = await n.run("renew", "--force");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(caCrt(n.root), cross.pem + n.old.pem);
  // The human output says the bundle changed, as --json's caBundles does.
  assert.match(r.stdout, /^ {2}rewrote CA bundle \S+\/etc\/kubernetes\/pki\/ca\.crt$/m);
  assert.equal(kubeletLeaf(n.root, "kubelet-client").issuerCommonName, "kubernetes-ca-2");
  // A CA certificate that no pinned CA signed is refused as before, nothing written.
  const stranger = await makeCa("stranger-ca");
  n.fake.ca = stranger;
  const refused = await n.run("renew");
  assert.equal(refused.code, 5, refused.stderr);
  assert.match(
    refused.stderr,
    /^node-join: error: CA: CA certificate pin sha256:[0-9a-f]{64} matches no --ca-cert-hash/,
  );
  // A node that skipped `trust add` is told how to trust the rotated CA.
  assert.match(
    refused.stderr,
    /; refusing to trust it \(if the CA was rotated, trust its new certificate first: node-join trust add --ca kubernetes --ca-file <new CA certificate>, its pin compared out of band with node-join probe\)$/m,
  );
  assert.equal(caCrt(n.root), cross.pem + n.old.pem);
});

test("a CA anchored by a step-ca fingerprint: retiring its root while the bundle holds a root no pin names is refused (exit 2, naming the pin to add); trust add moves the fingerprint to a pin", async () => {
  const n = await rotatingWorker();
  const file = join(n.root, "etc/node-join/config.yaml");
  const doc = YAML.parse(readFileSync(file, "utf8")) as { cas: { kubernetes: object } };
  const fp = certFingerprint(parseCert(n.old.pem));
  doc.cas.kubernetes = { ...doc.cas.kubernetes, certHashes: [], fingerprint: fp };
  writeFileSync(file, YAML.stringify(doc));
  // The new root, as step-ca's GET /roots sent it over the channel the old root authenticated.
  writeFileSync(join(n.root, "etc/kubernetes/pki/ca.crt"), n.old.pem + n.next.pem);
  const list = await n.run("trust list");
  assert.equal(list.code, 0, list.stderr);
  assert.match(
    list.stdout,
    new RegExp(
      `\\n  ${pinOf(n.next)}\\n    CN=kubernetes-ca-2, expires \\S+; in the bundle, pinned by nothing: the next renew drops it; pin it to keep it\\n`,
    ),
  );
  const early = await n.run("trust remove", "--ca", "kubernetes", "--ca-cert-hash", pinOf(n.old));
  assert.equal(early.code, 2);
  assert.equal(
    early.stderr,
    `node-join: error: CA kubernetes: removing ${pinOf(n.old)} would leave "CN=kubernetes-ca-2" (${pinOf(n.next)}) of ca.crt without an anchor: pin it first with node-join trust add --ca kubernetes --ca-cert-hash ${pinOf(n.next)}\n`,
  );
  const add = await n.run("trust add", "--ca", "kubernetes", "--ca-cert-hash", pinOf(n.next));
  assert.equal(add.code, 0, add.stderr);
  const after = YAML.parse(readFileSync(file, "utf8")) as {
    cas: { kubernetes: { certHashes: string[]; fingerprint?: string } };
  };
  assert.deepEqual(after.cas.kubernetes.certHashes, [pinOf(n.old), pinOf(n.next)]);
  assert.equal(after.cas.kubernetes.fingerprint, undefined);
  assert.deepEqual(cns(caCrt(n.root)), ["kubernetes-ca", "kubernetes-ca-2"]);
});

test("a changed CA bundle runs the post-renew hooks with NODE_JOIN_RENEWED naming the CA; an unchanged one runs none", async () => {
  const n = await rotatingWorker();
  const file = join(n.root, "etc/node-join/config.yaml");
  const out = join(n.root, "renewed.txt");
  const doc = YAML.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  doc.hooks = { postRenew: [["sh", "-c", `echo "$NODE_JOIN_RENEWED" >> ${out}`]] };
  writeFileSync(file, YAML.stringify(doc));
  assert.equal((await n.run("renew")).code, 0);
  assert.throws(() => readFileSync(out), /ENOENT/, "nothing changed: no hook");
  const add = await n.run("trust add", "--ca", "kubernetes", "--ca-file", caFileOf(n));
  assert.equal(add.code, 0, add.stderr);
  assert.equal(readFileSync(out, "utf8"), "ca\n");
});

test("one pin rule: status and the bundle agree on a CA file, whose certificates are the anchors; one that only chains to them is neither shown pinned nor kept", async () => {
  const old = await makeCa("kubernetes-ca");
  const cross = await crossSigned(await makeCa("kubernetes-ca-2"), old);
  const caFile = join(tempRoot("nj-pin-rule-"), "ca-file.pem");
  writeFileSync(caFile, old.pem);
  const settings = { type: "cfssl", urls: ["http://ca.invalid:8888"], certHashes: [], caFile };
  const installed = [old, cross].map((c) => parseCert(c.pem));
  const fileCerts = loadPemFile(caFile, "CA file");
  const kept = trustedBundle(settings, [], installed);
  assert.deepEqual(
    installed.map((c) => [
      c.commonName,
      pinnedBy(c, settings, fileCerts),
      kept.some((k) => k.der.equals(c.der)),
    ]),
    [
      ["kubernetes-ca", "caFile", true],
      ["kubernetes-ca-2", "none", false],
    ],
  );
});
