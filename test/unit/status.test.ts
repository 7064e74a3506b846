// `node-join status` as a user runs it, in process: main() on a root joined through main() against
// fake CAs on a fake clock. Each state a certificate or CA can be in, its exit code, the exact
// lines, the width of the default table and the one date format.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { shortHumanDuration } from "../../agent/common/time.js";
import { renewalDeadline } from "../../agent/pki/deadline.js";
import { certFingerprint, certPin, parseCert } from "../../agent/pki/x509.js";
import { mint } from "../helpers/chains.js";
import { tempRoot } from "../helpers/fs.js";
import { cli, DAY, iso, joined, kubeletLeaf } from "../helpers/joined.js";

const PKI = "var/lib/kubelet/pki";
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

/** A joined root and `node-join status --root <root> ...`. */
async function joinedStatus(role: "worker" | "control-plane" = "worker", lifetimeMs = 365 * DAY) {
  const n = await joined(role, lifetimeMs);
  return { ...n, status: (...a: string[]) => n.run("status", ...a) };
}

interface StatusJson {
  needsAttention: boolean;
  certificates: {
    name: string;
    state: string;
    problem?: string;
    expires?: string;
    renewalDeadline?: string;
  }[];
  certificateAuthorities: {
    name: string;
    state: string;
    expires?: string;
    problem?: string;
    subject?: string;
    pin?: string;
    pinnedBy?: string;
  }[];
}

test("status: a healthy worker exits 0 with the narrow tables, ISO dates and the renewal deadline", async () => {
  const n = await joinedStatus();
  const r = await n.status();
  assert.equal(r.code, 0, r.stderr);
  const now = new Date(n.clock.now());
  const leaf = kubeletLeaf(n.root, "kubelet-client");
  const deadline = renewalDeadline(leaf, { nodeName: "w1" });
  const renewIn = `${Math.floor((deadline.getTime() - now.getTime()) / DAY)}d`;
  const lines = r.stdout.split("\n");
  assert.equal(lines[0], "CERTIFICATE     EXPIRES               RESIDUAL  RENEW IN  STATE");
  assert.equal(
    lines[1],
    `kubelet-client  ${iso(leaf.notAfter)}  364d      ${renewIn.padEnd(8)}  ok`,
  );
  assert.match(lines[2]!, /^kubelet-server {2}\S+Z {2}364d {6}\d+d\s+ok$/);
  assert.equal(lines[4], "CERTIFICATE AUTHORITY  EXPIRES               RESIDUAL  STATE");
  assert.match(lines[5]!, /^ca {21}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}\S+\s+ok$/);
  // This node's config says timer.enabled: false, so no timer is not a problem.
  assert.equal(lines[7], "renewal timer: none");
  assert.equal(lines.length, 9, r.stdout);

  const j = await n.status("--json");
  assert.equal(j.code, 0);
  const st = JSON.parse(j.stdout) as StatusJson;
  assert.equal(st.needsAttention, false);
  const client = st.certificates[0]!;
  assert.equal(client.expires, iso(leaf.notAfter));
  assert.equal(client.renewalDeadline, iso(deadline));
  assert.match(st.certificateAuthorities[0]!.expires!, ISO);
  assert.deepEqual(
    st.certificates.map((c) => [c.name, c.state, c.problem]),
    [
      ["kubelet-client", "ok", undefined],
      ["kubelet-server", "ok", undefined],
    ],
  );
});

test("status: the default control-plane table fits 80 columns; --wide shows every column", async () => {
  const n = await joinedStatus("control-plane");
  const r = await n.status();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout.split("\n").filter((l) => l.startsWith("etcd-healthcheck-client")).length,
    1,
  );
  for (const line of r.stdout.split("\n")) assert.ok(line.length <= 80, `${line.length}: ${line}`);
  const wide = await n.status("--wide");
  assert.equal(wide.code, 0, wide.stderr);
  assert.match(
    wide.stdout,
    /^CERTIFICATE {15}EXPIRES {15}RESIDUAL {2}RENEW IN {2}RENEW AFTER {11}CERTIFICATE AUTHORITY {2}EXTERNALLY MANAGED {2}KEY TYPE {5}MANAGED {2}STATE {2}FILE\n/,
  );
  assert.match(
    wide.stdout,
    /^apiserver {17}\S+Z {2}364d {6}\d+d {6}\S+Z {2}ca {21}yes {17}ECDSA P-256 {2}yes {6}ok {5}\S+\/nj-joined-\w+\/etc\/kubernetes\/pki\/apiserver\.crt$/m,
  );
  assert.match(
    wide.stdout,
    // The FILE column as wide as the longest path, the root's included.
    new RegExp(
      `^CERTIFICATE AUTHORITY {2}EXPIRES {15}RESIDUAL {2}EXTERNALLY MANAGED {2}STATE {2}PINNED BY {3}PIN {70}FILE {${36 + n.root.length}}SUBJECT\n`,
      "m",
    ),
  );
  assert.match(
    wide.stdout,
    /^etcd-ca {16}\S+Z {2}9y {8}yes {17}ok {5}certHashes {2}sha256:[0-9a-f]{64} {2}\S+\/nj-joined-\w+\/etc\/kubernetes\/pki\/etcd\/ca\.crt {9}CN=etcd-ca$/m,
  );
});

test("status: --warn-within flags what expires within it (exit 8); a bad duration is exit 2", async () => {
  const n = await joinedStatus();
  const r = await n.status("--warn-within", "400d");
  assert.equal(r.code, 8, r.stderr);
  assert.equal(r.stderr, "");
  const notAfter = iso(kubeletLeaf(n.root, "kubelet-client").notAfter);
  assert.match(r.stdout, /^kubelet-client {2}\S+Z {2}364d {6}\d+d {6}expiring$/m);
  assert.ok(
    r.stdout.includes(
      `\nneeds attention:\n  kubelet-client: expires at ${notAfter}, within --warn-within 400d (${n.root}/var/lib/kubelet/pki/kubelet-client-current.pem)\n`,
    ),
    r.stdout,
  );
  assert.match(
    r.stdout,
    /\nnode-join renew repairs and renews these certificates \(--force renews one not yet due\)\n$/,
  );
  assert.equal((await n.status("--warn-within", "30d")).code, 0);
  // a CA has no renewal deadline: --warn-within is what warns of it
  const ca = await n.status("--warn-within", "4000d");
  assert.equal(ca.code, 8);
  assert.match(
    ca.stdout,
    /^ {2}ca: expires at \S+Z, within --warn-within 4000d \(\S+\/nj-joined-\w+\/etc\/kubernetes\/pki\/ca\.crt\)$/m,
  );
  const j = await n.status("--warn-within", "400d", "--json");
  assert.equal(j.code, 8);
  assert.equal((JSON.parse(j.stdout) as StatusJson).needsAttention, true);
  const bad = await n.status("--warn-within", "soon");
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr,
    'node-join: error: --warn-within: must be a duration such as 30d, 720h or 90s (got "soon")\n',
  );
});

test("status: past the renewal deadline, then expired: exit 8 with the reason", async () => {
  const n = await joinedStatus("worker", 30 * DAY);
  n.clock.advance(27.5 * DAY); // past 90 % of 30 days
  const due = await n.status();
  assert.equal(due.code, 8, due.stderr);
  const deadline = renewalDeadline(kubeletLeaf(n.root, "kubelet-client"), { nodeName: "w1" });
  assert.match(due.stdout, /^kubelet-client {2}\S+Z {2}2d {8}now {7}renewal due$/m);
  assert.ok(
    due.stdout.includes(
      `  kubelet-client: past its renewal deadline (${iso(deadline)}) (${n.root}/var/lib/kubelet/pki/kubelet-client-current.pem)\n`,
    ),
    due.stdout,
  );
  n.clock.advance(3 * DAY);
  const expired = await n.status();
  assert.equal(expired.code, 8);
  const notAfter = iso(kubeletLeaf(n.root, "kubelet-server").notAfter);
  assert.match(expired.stdout, /^kubelet-server {2}\S+Z {2}0s {8}now {7}expired$/m);
  assert.ok(
    expired.stdout.includes(
      `  kubelet-server: expired at ${notAfter} (${n.root}/var/lib/kubelet/pki/kubelet-server-current.pem)\n`,
    ),
  );
});

test("status: a key that does not match, a truncated certificate and a missing one are exit 8", async () => {
  const n = await joinedStatus();
  const target = join(n.root, PKI, readlinkSync(join(n.root, PKI, "kubelet-server-current.pem")));
  writeFileSync(target, readFileSync(target, "utf8").slice(0, 200));
  const truncated = await n.status();
  assert.equal(truncated.code, 8);
  assert.match(truncated.stdout, new RegExp(`^kubelet-server${" ".repeat(44)}unreadable$`, "m"));
  assert.ok(
    truncated.stdout.includes(
      `  kubelet-server: unreadable (kubelet-server-current.pem holds a truncated PEM certificate) (${n.root}/var/lib/kubelet/pki/kubelet-server-current.pem)\n`,
    ),
    truncated.stdout,
  );

  const client = join(n.root, PKI, readlinkSync(join(n.root, PKI, "kubelet-client-current.pem")));
  const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({
    format: "pem",
    type: "sec1",
  });
  writeFileSync(
    client,
    readFileSync(client, "utf8").replace(
      /-----BEGIN EC PRIVATE KEY-----[\s\S]*$/,
      other.toString(),
    ),
  );
  const mismatch = await n.status();
  assert.equal(mismatch.code, 8);
  assert.match(mismatch.stdout, /^kubelet-client {2}\S+Z {2}364d {6}\d+d {6}key mismatch$/m);
  assert.ok(
    mismatch.stdout.includes(
      `  kubelet-client: key does not match certificate (${n.root}/var/lib/kubelet/pki/kubelet-client-current.pem)\n`,
    ),
  );

  rmSync(join(n.root, "etc/kubernetes/pki/ca.crt"));
  rmSync(join(n.root, PKI, "kubelet-server-current.pem"));
  const missing = await n.status("--json");
  assert.equal(missing.code, 8);
  const st = JSON.parse(missing.stdout) as StatusJson;
  assert.deepEqual(
    [...st.certificates, ...st.certificateAuthorities].map((c) => [c.name, c.state, c.problem]),
    [
      ["kubelet-client", "key mismatch", "key does not match certificate"],
      ["kubelet-server", "missing", "missing"],
      ["ca", "missing", "missing"],
    ],
  );
});

test("status: a root node-join never joined is exit 9; a root that does not exist is exit 2", async () => {
  const empty = tempRoot("nj-status-empty-");
  const r = await cli(["status", "--root", empty]);
  assert.equal(r.code, 9);
  assert.equal(r.stdout, "");
  assert.equal(
    r.stderr,
    `node-join: error: ${empty} was never joined by node-join (no ${empty}/etc/node-join/config.yaml): run node-join join\n`,
  );
  const j = await cli(["status", "--root", empty, "--json"]);
  assert.equal(j.code, 9);
  assert.equal((JSON.parse(j.stdout) as { exitCode: number }).exitCode, 9);
  // an explicit role inspects the tree anyway: everything missing needs attention
  const role = await cli(["status", "--root", empty, "--role", "worker"]);
  assert.equal(role.code, 8);
  assert.match(role.stdout, new RegExp(`^kubelet-client${" ".repeat(31)}missing$`, "m"));

  const typo = join(empty, "no-such-dir");
  const t = await cli(["status", "--root", typo]);
  assert.equal(t.code, 2);
  assert.equal(t.stdout, "");
  assert.equal(t.stderr, `node-join: error: --root ${typo}: no such directory\n`);
});

/**
 * A second CA certificate appended to the joined worker's ca.crt (a rotation's new CA), valid
 * for five years unless `notAfter` says otherwise.
 */
async function appendCa(root: string, cn: string, notAfter = new Date(Date.now() + 1826 * DAY)) {
  const next = await mint({ cn, ca: true, notAfter });
  const file = join(root, "etc/kubernetes/pki/ca.crt");
  writeFileSync(file, readFileSync(file, "utf8") + next.pem);
  return parseCert(next.pem);
}

/**
 * Rewrites the joined worker's config: `edit` gets and returns the kubernetes CA's trust lines
 * (certHashes, fingerprint, caFile).
 */
function editTrust(root: string, edit: (lines: string) => string): void {
  const file = join(root, "etc/node-join/config.yaml");
  const text = readFileSync(file, "utf8");
  const m = /((?: {4}(?:certHashes:\n(?: {6}- \S+\n)+|fingerprint: \S+\n|caFile: \S+\n))+)/.exec(
    text,
  );
  assert.ok(m, text);
  writeFileSync(file, text.replace(m[1]!, edit(m[1]!)));
}

test("status: a CA file with two certificates shows a row for each; one no pin covers is unpinned (exit 8)", async () => {
  const n = await joinedStatus();
  const next = await appendCa(n.root, "kubernetes-ca-next");
  const pin = certPin(next);
  const collector = join(n.root, "var/lib/node_exporter/textfile_collector");
  mkdirSync(collector, { recursive: true });
  const r = await n.status();
  assert.equal(r.code, 8, r.stderr);
  assert.equal(r.stderr, "");
  const lines = r.stdout.split("\n");
  assert.equal(lines[4], "CERTIFICATE AUTHORITY  EXPIRES               RESIDUAL  STATE");
  // the anchor was made on the real clock after the fake one started: 9y or 10y left by that gap
  const anchorLeft = shortHumanDuration(n.cas.kubernetes.anchor.notAfter.getTime() - n.clock.now());
  assert.equal(
    lines[5],
    `ca                     ${iso(n.cas.kubernetes.anchor.notAfter)}  ${anchorLeft.padEnd(8)}  ok`,
  );
  assert.equal(lines[6], `ca (2)                 ${iso(next.notAfter)}  5y        unpinned`);
  assert.ok(
    r.stdout.includes(
      `\nneeds attention:\n  ca (2): "CN=kubernetes-ca-next" (pin ${pin}) matches no --ca-cert-hash (config key cas.kubernetes.certHashes) (${n.root}/etc/kubernetes/pki/ca.crt)\n`,
    ),
    r.stdout,
  );
  // no hint to renew: renewing certificates does not pin a CA
  assert.doesNotMatch(r.stdout, /node-join renew repairs/);
  // the metrics textfile has a series for each of them
  const secs = (d: Date) => d.getTime() / 1000;
  const anchor = n.cas.kubernetes.anchor;
  assert.deepEqual(
    readFileSync(join(collector, "node_join.prom"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("node_join_ca_expiry_timestamp_seconds{")),
    [
      `node_join_ca_expiry_timestamp_seconds{ca="kubernetes",subject="CN=kubernetes-ca",pin="${certPin(anchor)}"} ${secs(anchor.notAfter)}`,
      `node_join_ca_expiry_timestamp_seconds{ca="kubernetes",subject="CN=kubernetes-ca-next",pin="${pin}"} ${secs(next.notAfter)}`,
    ],
  );

  const j = await n.status("--json");
  assert.equal(j.code, 8);
  const cas = (JSON.parse(j.stdout) as StatusJson).certificateAuthorities;
  assert.deepEqual(
    cas.map((c) => [c.name, c.subject, c.pin, c.pinnedBy, c.state]),
    [
      ["ca", "CN=kubernetes-ca", certPin(anchor), "certHashes", "ok"],
      ["ca (2)", "CN=kubernetes-ca-next", pin, "none", "unpinned"],
    ],
  );

  const wide = await n.status("--wide");
  assert.match(
    wide.stdout,
    new RegExp(
      `^ca \\(2\\) {17}\\S+Z {2}5y {8}yes {17}unpinned {2}none {8}${pin} {2}${n.root}/etc/kubernetes/pki/ca\\.crt {2}CN=kubernetes-ca-next$`,
      "m",
    ),
  );

  // pinning it (as an operator adds a second --ca-cert-hash) covers it
  editTrust(n.root, (l) => `${l}      - ${pin}\n`);
  const pinned = await n.status("--json");
  assert.equal(pinned.code, 0, pinned.stdout);
  assert.deepEqual(
    (JSON.parse(pinned.stdout) as StatusJson).certificateAuthorities.map((c) => c.pinnedBy),
    ["certHashes", "certHashes"],
  );
});

test("status: a CA certificate is covered by a step-ca fingerprint or a CA file; without any trust configured nothing is flagged", async () => {
  const n = await joinedStatus();
  const first = n.cas.kubernetes.anchor;
  const next = await appendCa(n.root, "kubernetes-ca-next");
  const caFile = join(n.root, "etc/node-join/ca-bundle.pem");
  writeFileSync(caFile, next.pem);
  editTrust(n.root, () => `    fingerprint: ${certFingerprint(first)}\n    caFile: ${caFile}\n`);
  const both = await n.status("--json");
  assert.equal(both.code, 0, both.stdout);
  assert.deepEqual(
    (JSON.parse(both.stdout) as StatusJson).certificateAuthorities.map((c) => c.pinnedBy),
    ["fingerprint", "caFile"],
  );
  // a CA file that cannot be read covers nothing, and the message says why
  rmSync(caFile);
  const gone = await n.status();
  assert.equal(gone.code, 8);
  assert.match(
    gone.stdout,
    /^ {2}ca \(2\): "CN=kubernetes-ca-next" \(pin sha256:[0-9a-f]{64}\) matches no --ca-fingerprint \(config key cas\.kubernetes\.fingerprint\) or --ca-file \(config key cas\.kubernetes\.caFile\) \(cannot read CA file \S+ca-bundle\.pem: no such file or directory \(ENOENT\)\) \(\S+\/nj-joined-\w+\/etc\/kubernetes\/pki\/ca\.crt\)$/m,
  );
  // CA files node-join did not authenticate (no pin, fingerprint or CA file at all): shown, not
  // flagged, since nothing configured could cover them
  editTrust(n.root, () => "");
  const none = await n.status("--json");
  assert.equal(none.code, 0, none.stdout);
  assert.deepEqual(
    (JSON.parse(none.stdout) as StatusJson).certificateAuthorities.map((c) => [
      c.pinnedBy,
      c.state,
    ]),
    [
      ["not configured", "ok"],
      ["not configured", "ok"],
    ],
  );
});

test("status: a CA with less time left than its certificates' lifetime needs attention by default", async () => {
  const n = await joinedStatus();
  const now = n.clock.now();
  const soon = await appendCa(n.root, "kubernetes-ca-old", new Date(now + 100 * DAY + 60_000));
  editTrust(n.root, (l) => `${l}      - ${certPin(soon)}\n`);
  const r = await n.status();
  assert.equal(r.code, 8, r.stderr);
  assert.match(r.stdout, /^ca \(2\) {17}\S+Z {2}100d {6}expiring$/m);
  assert.ok(
    r.stdout.includes(
      `  ca (2): expires at ${iso(soon.notAfter)}, within the lifetime of its kubelet-client certificate (1y): rotate the CA (${n.root}/etc/kubernetes/pki/ca.crt)\n`,
    ),
    r.stdout,
  );
  // more time left than a certificate lasts: fine
  const later = await joinedStatus();
  const ok = await appendCa(
    later.root,
    "kubernetes-ca-old",
    new Date(later.clock.now() + 370 * DAY + 60_000),
  );
  editTrust(later.root, (l) => `${l}      - ${certPin(ok)}\n`);
  const fine = await later.status();
  assert.equal(fine.code, 0, fine.stdout);
  assert.match(fine.stdout, /^ca \(2\) {17}\S+Z {2}1y {8}ok$/m);
});
