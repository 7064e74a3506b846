// status and `renew --dry-run` read the one assessment (engine/assess.ts): for every reason renew
// would re-issue a certificate, status needs attention (exit 8) naming that certificate, its state
// and the same reason; and what renew keeps, status calls ok. In process, on a root joined through
// main() against fake CAs on a fake clock.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, webcrypto } from "node:crypto";
import { mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { certPin, parseCert } from "../../agent/pki/x509.js";
import { issueLeaf, makeCa } from "../helpers/pki.js";
import { DAY, joined, type Joined } from "../helpers/joined.js";

const PKI = "var/lib/kubelet/pki";

interface Cert {
  name: string;
  state: string;
  cause: string;
  problem?: string;
}

interface Verdicts {
  status: { code: number; needsAttention: boolean; certificates: Cert[] };
  /** What renew --dry-run would re-issue: kind -> reason. */
  renew: Map<string, string>;
}

/** status --json and renew --dry-run --json of the same node at the same moment. */
async function verdicts(n: Joined): Promise<Verdicts> {
  const s = await n.run("status", "--json");
  const status = JSON.parse(s.stdout) as Verdicts["status"];
  const r = await n.run("renew", "--dry-run", "--json");
  assert.equal(r.code, 0, r.stderr);
  const renewed = (JSON.parse(r.stdout) as { renewed: { kind: string; reason: string }[] }).renewed;
  return {
    status: { ...status, code: s.code },
    renew: new Map(renewed.map((x) => [x.kind, x.reason])),
  };
}

/**
 * status and renew --dry-run agree: each certificate status flags is one renew would re-issue and
 * the other way round; `kind` is flagged with `state`, `cause` and a problem matching `reason`
 * (renew's reason too, unless status words it its own way: `renewReason`).
 */
async function agree(
  n: Joined,
  kind: string,
  want: { state: string; cause: string; reason: RegExp; renewReason?: RegExp },
): Promise<void> {
  const v = await verdicts(n);
  assert.equal(v.status.code, 8, JSON.stringify(v.status));
  assert.equal(v.status.needsAttention, true);
  const flagged = v.status.certificates.filter((c) => c.state !== "ok").map((c) => c.name);
  assert.deepEqual(flagged.sort(), [...v.renew.keys()].sort());
  const c = v.status.certificates.find((x) => x.name === kind)!;
  assert.equal(c.state, want.state, JSON.stringify(c));
  assert.equal(c.cause, want.cause);
  assert.match(c.problem ?? "", want.reason);
  assert.match(v.renew.get(kind) ?? "(not renewed)", want.renewReason ?? want.reason);
  if (!want.renewReason) assert.equal(c.problem, v.renew.get(kind));
}

function editConfig(n: Joined, from: RegExp, to: string): void {
  const file = join(n.root, "etc/node-join/config.yaml");
  const text = readFileSync(file, "utf8");
  assert.match(text, from);
  writeFileSync(file, text.replace(from, to));
}

/** The file behind a kubelet `-current.pem` link: certificate chain, then key. */
const kubeletFile = (n: Joined, prefix: string) =>
  join(n.root, PKI, readlinkSync(join(n.root, PKI, `${prefix}-current.pem`)));

test("status and renew --dry-run agree on a healthy node: all ok, exit 0, nothing to renew", async () => {
  const n = await joined();
  const v = await verdicts(n);
  assert.equal(v.status.code, 0);
  assert.equal(v.status.needsAttention, false);
  assert.deepEqual(
    v.status.certificates.map((c) => [c.name, c.state, c.cause]),
    [
      ["kubelet-client", "ok", "ok"],
      ["kubelet-server", "ok", "ok"],
    ],
  );
  assert.equal(v.renew.size, 0);
});

test("status and renew --dry-run agree: a changed ips: in config.yaml re-issues kubelet-server", async () => {
  const n = await joined();
  editConfig(n, /ips:\n {2}- 10\.0\.0\.21\n/, "ips:\n  - 10.0.0.99\n");
  await agree(n, "kubelet-server", {
    state: "mismatch",
    cause: "template",
    reason: /10\.0\.0\.99/,
  });
});

test("status and renew --dry-run agree: a changed nodeName re-issues both kubelet certificates", async () => {
  const n = await joined();
  editConfig(n, /^nodeName: w1$/m, "nodeName: w2");
  for (const kind of ["kubelet-client", "kubelet-server"])
    await agree(n, kind, { state: "mismatch", cause: "template", reason: /system:node:w2/ });
});

test("status and renew --dry-run agree: a changed keyAlgorithm re-issues both", async () => {
  const n = await joined();
  editConfig(n, /^timer:/m, "keyAlgorithm: ecdsa-p384\ntimer:");
  for (const kind of ["kubelet-client", "kubelet-server"])
    await agree(n, kind, {
      state: "key algorithm",
      cause: "key-algorithm",
      reason: /^key algorithm changed \(.*ecdsa-p384.*\)$/,
    });
});

test("status and renew --dry-run agree: a certificate another CA signed is untrusted", async () => {
  const n = await joined();
  const file = kubeletFile(n, "kubelet-client");
  const text = readFileSync(file, "utf8");
  const spki = parseCert(text).node.publicKey.export({ type: "spki", format: "der" });
  const ec = { name: "ECDSA", namedCurve: "P-256" };
  const other = await makeCa("another-ca");
  const leaf = await issueLeaf(other, {
    publicKey: await webcrypto.subtle.importKey("spki", spki, ec, true, ["verify"]),
    cn: "system:node:w1",
    o: ["system:nodes"],
    ekus: ["1.3.6.1.5.5.7.3.2"],
    notBefore: new Date(n.clock.now() - 60_000),
    notAfter: new Date(n.clock.now() + 300 * DAY),
  });
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*$/.exec(text)![0];
  writeFileSync(file, leaf + key);
  await agree(n, "kubelet-client", {
    state: "untrusted",
    cause: "chain",
    reason: /^does not chain to the installed CA$/,
  });
});

test("status and renew --dry-run agree: a key that does not match its certificate", async () => {
  const n = await joined();
  const file = kubeletFile(n, "kubelet-client");
  const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({
    format: "pem",
    type: "sec1",
  });
  const text = readFileSync(file, "utf8");
  writeFileSync(file, text.replace(/-----BEGIN EC PRIVATE KEY-----[\s\S]*$/, other.toString()));
  await agree(n, "kubelet-client", {
    state: "key mismatch",
    cause: "key-mismatch",
    reason: /^key does not match certificate$/,
    renewReason: /^installed key does not match its certificate$/,
  });
});

test("status and renew --dry-run agree: a missing certificate", async () => {
  const n = await joined();
  rmSync(join(n.root, PKI, "kubelet-server-current.pem"));
  await agree(n, "kubelet-server", { state: "missing", cause: "missing", reason: /^missing$/ });
});

test("status and renew --dry-run agree: past the renewal deadline, then expired", async () => {
  const n = await joined("worker", 30 * DAY);
  n.clock.advance(27.5 * DAY); // past 90 % of 30 days
  for (const kind of ["kubelet-client", "kubelet-server"])
    await agree(n, kind, {
      state: "renewal due",
      cause: "due",
      reason: /^past its renewal deadline \(\S+Z\)$/,
    });
  n.clock.advance(3 * DAY);
  for (const kind of ["kubelet-client", "kubelet-server"])
    await agree(n, kind, { state: "expired", cause: "expired", reason: /^expired at \S+Z$/ });
});

test("the metrics textfile that status refreshes carries the same verdict per certificate", async () => {
  const n = await joined();
  const collector = join(n.root, "var/lib/node_exporter/textfile_collector");
  mkdirSync(collector, { recursive: true });
  editConfig(n, /ips:\n {2}- 10\.0\.0\.21\n/, "ips:\n  - 10.0.0.99\n");
  const v = await verdicts(n);
  assert.equal(v.status.code, 8);
  const samples = (command: string) =>
    readFileSync(join(collector, "node_join.prom"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("node_join_certificate_renewal_needed{"))
      .map((l) => [command, l.replace(/,file="[^"]*"/, "")]);
  // renew --dry-run ran last: it refreshed the textfile with its own verdict, the same.
  const expected = [
    'node_join_certificate_renewal_needed{kind="kubelet-client",cause="ok"} 0',
    'node_join_certificate_renewal_needed{kind="kubelet-server",cause="template"} 1',
  ];
  assert.deepEqual(
    samples("renew"),
    expected.map((l) => ["renew", l]),
  );
  assert.equal((await n.run("status")).code, 8);
  assert.deepEqual(
    samples("status"),
    expected.map((l) => ["status", l]),
  );
});

test("status and renew --dry-run agree: renew.onSignerChange early makes a retiring signer's certificates due", async () => {
  const n = await joined();
  const fake = n.cas.kubernetes;
  const next = await makeCa("kubernetes-ca-2");
  editConfig(n, /( {6}- sha256:[0-9a-f]{64}\n)/, `$1      - ${certPin(parseCert(next.pem))}\n`);
  editConfig(n, /^timer:/m, "renew:\n  onSignerChange: early\n  signerChangeWindow: 2d\ntimer:");
  // The CA signs with its new key and serves both during the overlap.
  fake.alsoServed = [fake.ca];
  fake.ca = next;
  const first = await n.run("renew", "--json");
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual((JSON.parse(first.stdout) as { renewed: unknown[] }).renewed, []);
  const before = await verdicts(n);
  assert.equal(before.status.code, 0, JSON.stringify(before.status));
  assert.equal(before.renew.size, 0);
  n.clock.advance(2 * DAY);
  for (const kind of ["kubelet-client", "kubelet-server"])
    await agree(n, kind, {
      state: "renewal due",
      cause: "due",
      reason: /^signed by a retiring CA: the CA signs with "kubernetes-ca-2" since /,
    });
});
