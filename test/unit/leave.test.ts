// `node-join leave` driven as a user drives it (main() in process, fake CAs, a temp --root):
// what goes, what is kept and why, the question on a terminal, --dry-run, --keep-backup, --revoke,
// the static pods and the kubelet stopped first, and the one transaction under a crash.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createHash, generateKeyPairSync } from "node:crypto";
import { join, relative } from "node:path";
import type { RuntimeSeams } from "../../agent/cli/context.js";
import { NEEDS_YES } from "../../agent/cli/leave.js";
import { main } from "../../agent/cli/main.js";
import { serialDecimal } from "../../agent/engine/leave.js";
import type { FakeCa } from "../helpers/fake-ca.js";
import { snapshot, tempRoot } from "../helpers/fs.js";
import { DAY, joined, kubeletLeaf, type Joined, type Out } from "../helpers/joined.js";

/** Every path left under the root, relative, sorted. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      out.push(relative(root, join(d, e.name)));
      if (e.isDirectory()) walk(join(d, e.name));
    }
  };
  walk(root);
  return out.sort();
}

/** What a worker join leaves once node-join left: the kubelet's and kubeadm's directories. */
const WORKER_AFTER = ["etc", "etc/kubernetes", "var", "var/lib", "var/lib/kubelet"];

/** The files a worker join wrote, in the order leave lists them (relative to the root). */
function workerFiles(root: string): string[] {
  const stamped = (prefix: string) =>
    readdirSync(join(root, "var/lib/kubelet/pki"))
      .filter((n) => n.startsWith(`${prefix}-2`))
      .map((n) => `var/lib/kubelet/pki/${n}`);
  return [
    "var/lib/kubelet/pki/kubelet-client-current.pem",
    ...stamped("kubelet-client"),
    "etc/kubernetes/kubelet.conf",
    "var/lib/kubelet/pki/kubelet-server-current.pem",
    ...stamped("kubelet-server"),
    "etc/kubernetes/pki/ca.crt",
    "etc/kubernetes/kubelet.conf.d/50-node-join-serving.conf",
    "etc/node-join/config.yaml",
    "var/lib/node-join/state.json",
  ];
}

/** main() in process with a terminal that answers `answer` (undefined: no terminal). */
async function onTerminal(
  n: Joined,
  args: string[],
  answer: string | undefined,
  seams: RuntimeSeams = {},
): Promise<Out & { asked: string[] }> {
  let stdout = "";
  let stderr = "";
  const asked: string[] = [];
  const code = await main(
    ["leave", "--root", n.root, ...args],
    {
      stdout: (t) => void (stdout += t),
      stderr: (t) => void (stderr += t),
      env: {},
      isTerminal: () => answer !== undefined,
      prompt: async (q) => {
        asked.push(q);
        return answer ?? "";
      },
    },
    { clock: n.clock, backend: (ctx) => n.cas[ctx.ca.name], ...seams },
  );
  return { code, stdout, stderr, asked };
}

test("leave --dry-run lists every file it would remove, changes nothing; leave --yes removes them all", async () => {
  const n = await joined("worker");
  const files = workerFiles(n.root);
  const before = snapshot(n.root);
  const dry = await n.run("leave", "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(
    dry.stdout,
    `dry run: would leave worker node w1: remove ${files.length} file(s), keep 0\n` +
      files.map((f) => `  would remove ${join(n.root, f)}\n`).join(""),
  );
  assert.deepEqual(snapshot(n.root), before, "a dry run changes nothing");

  const r = await n.run("leave", "--yes");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    `left worker node w1: removed ${files.length} file(s), kept 0\n` +
      files.map((f) => `  removed ${join(n.root, f)}\n`).join(""),
  );
  assert.equal(
    r.stderr,
    "node-join: not stopping the kubelet under --root (set hooks.preLeave to run commands first)\n",
  );
  assert.deepEqual(tree(n.root), WORKER_AFTER);

  const again = await n.run("leave", "--yes");
  assert.equal(again.code, 0, again.stderr);
  assert.equal(
    again.stdout,
    "nothing to do: node-join has not joined this root, or already left it\n",
  );
});

test("a file changed since node-join wrote it, or one it never wrote, is kept and listed", async () => {
  const n = await joined("worker");
  const kubeconfig = join(n.root, "etc/kubernetes/kubelet.conf");
  appendFileSync(kubeconfig, "# edited by the operator\n");
  // A CA file node-join never wrote: no digest in the state file (as kubeadm's own would be).
  const state = join(n.root, "var/lib/node-join/state.json");
  const st = JSON.parse(readFileSync(state, "utf8")) as { files: Record<string, string> };
  delete st.files["etc/kubernetes/pki/ca.crt"];
  writeFileSync(state, JSON.stringify(st));
  const r = await n.run("leave", "--yes");
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  assert.equal(lines[0], "left worker node w1: removed 7 file(s), kept 2");
  assert.deepEqual(
    lines.filter((l) => l.startsWith("  kept")),
    [
      `  kept ${kubeconfig} (changed since node-join wrote it)`,
      `  kept ${join(n.root, "etc/kubernetes/pki/ca.crt")} (not written by node-join (no record of it in its state file))`,
    ],
  );
  assert.deepEqual(tree(n.root), [
    ...WORKER_AFTER.slice(0, 2),
    "etc/kubernetes/kubelet.conf",
    "etc/kubernetes/pki",
    "etc/kubernetes/pki/ca.crt",
    ...WORKER_AFTER.slice(2),
  ]);
});

test("a state file without digests (an older node-join): a certificate is node-join's when its serial is the state's", async () => {
  const n = await joined("worker");
  const files = workerFiles(n.root);
  const state = join(n.root, "var/lib/node-join/state.json");
  const st = JSON.parse(readFileSync(state, "utf8")) as { files?: unknown };
  delete st.files;
  writeFileSync(state, JSON.stringify(st));
  const r = await n.run("leave", "--yes", "--json");
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { removed: string[]; kept: { path: string }[] };
  // The kubelet files (serial), the drop-in (its fixed text) and the state itself go; the CA file
  // and the config have nothing that says node-join wrote them.
  assert.deepEqual(
    out.kept.map((k) => relative(n.root, k.path)),
    ["etc/kubernetes/pki/ca.crt", "etc/node-join/config.yaml"],
  );
  assert.deepEqual(
    out.removed.map((p) => relative(n.root, p)),
    files.filter((f) => !f.endsWith("ca.crt") && !f.endsWith("config.yaml")),
  );
});

test("without a terminal and without --yes leave stops at once (exit 2); on a terminal only y or yes goes on", async () => {
  const n = await joined("worker");
  const before = snapshot(n.root);
  const r = await onTerminal(n, [], undefined);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, `node-join: error: ${NEEDS_YES}\n`);
  assert.deepEqual(snapshot(n.root), before);

  const no = await onTerminal(n, [], "n");
  assert.equal(no.code, 1);
  assert.deepEqual(no.asked, ["Leave the cluster and remove these 9 file(s)? [y/N] "]);
  assert.ok(no.stderr.startsWith("node-join leave will:\n  would remove "), no.stderr);
  assert.ok(
    no.stderr.endsWith("node-join: error: leave cancelled at the prompt: nothing was changed\n"),
    no.stderr,
  );
  assert.deepEqual(snapshot(n.root), before);

  const yes = await onTerminal(n, [], "yes");
  assert.equal(yes.code, 0, yes.stderr);
  assert.deepEqual(tree(n.root), WORKER_AFTER);
});

test("--keep-backup copies every removed file under /var/lib/node-join/backup/<timestamp>/, keys 0600", async () => {
  const n = await joined("worker");
  const files = workerFiles(n.root);
  const texts = new Map(
    files
      .filter((f) => !f.endsWith("-current.pem"))
      .map((f) => [f, readFileSync(join(n.root, f), "utf8")]),
  );
  const dry = await n.run("leave", "--dry-run", "--keep-backup");
  assert.match(
    dry.stdout,
    /\n {2}would copy every file it removes to .*\/var\/lib\/node-join\/backup\/<timestamp>\/ first\n/,
  );
  const r = await n.run("leave", "--yes", "--keep-backup", "--json");
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { backup: string; backupsRemoved: boolean };
  assert.equal(out.backupsRemoved, false);
  assert.ok(out.backup.startsWith(join(n.root, "var/lib/node-join/backup/")), out.backup);
  for (const [f, text] of texts) {
    assert.equal(readFileSync(join(out.backup, f), "utf8"), text, f);
    if (f.includes("kubelet-client-2"))
      assert.equal(statSync(join(out.backup, f)).mode & 0o777, 0o600, f);
  }
  assert.ok(!existsSync(join(n.root, "var/lib/node-join/state.json")));
});

test("--revoke revokes every certificate still valid at its CA (cessationOfOperation) before the files go", async () => {
  const n = await joined("worker");
  n.cas.kubernetes.withRevocation();
  const client = kubeletLeaf(n.root, "kubelet-client").serial;
  const server = kubeletLeaf(n.root, "kubelet-server").serial;
  const dry = await n.run("leave", "--dry-run", "--revoke");
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(
    dry.stdout.includes(
      `\n  would revoke kubelet-client serial ${client} (${serialDecimal(client)}) of CA kubernetes\n`,
    ),
    dry.stdout,
  );
  assert.deepEqual(n.cas.kubernetes.revoked, []);
  const r = await n.run("leave", "--yes", "--revoke");
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(n.cas.kubernetes.revoked, [
    `kubelet-client ${client} cessationOfOperation`,
    `kubelet-server ${server} cessationOfOperation`,
  ]);
  assert.ok(
    r.stdout.includes(
      `\n  revoked kubelet-server serial ${server} (${serialDecimal(server)}) of CA kubernetes\n`,
    ),
  );
  assert.deepEqual(tree(n.root), WORKER_AFTER);
});

test("--revoke leaves out what assess finds expired, and revokes what is still valid whatever else is wrong with it", async () => {
  const n = await joined("worker", 30 * DAY);
  n.cas.kubernetes.withRevocation();
  const client = kubeletLeaf(n.root, "kubelet-client").serial;
  // Valid at its CA, though no longer with this node's key: renew would re-issue it, leave revokes.
  const current = join(n.root, "var/lib/kubelet/pki/kubelet-client-current.pem");
  const text = readFileSync(current, "utf8");
  const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({
    format: "pem",
    type: "sec1",
  });
  writeFileSync(current, text.replace(/-----BEGIN EC PRIVATE KEY-----[\s\S]*$/, other.toString()));
  const mismatched = await n.run("leave", "--dry-run", "--revoke");
  assert.equal(mismatched.code, 0, mismatched.stderr);
  assert.ok(
    mismatched.stdout.includes(`would revoke kubelet-client serial ${client} `),
    mismatched.stdout,
  );
  n.clock.advance(31 * DAY);
  const r = await n.run("leave", "--yes", "--revoke");
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(n.cas.kubernetes.revoked, []);
  assert.doesNotMatch(r.stdout, /revoked kubelet/);
});

test("--revoke: a CA that cannot revoke or refuses stops leave with the serials (exit 10, nothing removed) unless --force", async () => {
  const n = await joined("worker");
  const client = kubeletLeaf(n.root, "kubelet-client").serial;
  const server = kubeletLeaf(n.root, "kubelet-server").serial;
  const before = snapshot(n.root);
  const none = await n.run("leave", "--yes", "--revoke");
  assert.equal(none.code, 10);
  assert.equal(
    none.stderr,
    `node-join: error: could not revoke 2 certificate(s), nothing was removed: ` +
      `kubelet-client serial ${client} (${serialDecimal(client)}) of CA kubernetes: CA kubernetes (fake) has no revocation path; ` +
      `kubelet-server serial ${server} (${serialDecimal(server)}) of CA kubernetes: CA kubernetes (fake) has no revocation path; ` +
      `revoke them at the CA, or pass --force to leave without\n`,
  );
  assert.deepEqual(snapshot(n.root), before);

  n.cas.kubernetes.withRevocation().failure = { mode: "refuse", kinds: ["kubelet-server"] };
  const refused = await n.run("leave", "--yes", "--revoke", "--json");
  assert.equal(refused.code, 10);
  assert.match(
    refused.stderr,
    new RegExp(
      `^node-join: error: could not revoke 1 certificate\\(s\\), nothing was removed: kubelet-server serial ${server} \\(${serialDecimal(server)}\\) of CA kubernetes: CA kubernetes \\(fake\\) revoking serial ${server} refused: policy; revoke them at the CA, or pass --force to leave without\n$`,
    ),
  );
  assert.equal((JSON.parse(refused.stdout) as { exitCode: number }).exitCode, 10);
  assert.deepEqual(snapshot(n.root), before);

  const forced = await n.run("leave", "--yes", "--revoke", "--force");
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(
    forced.stderr,
    new RegExp(`node-join: warning: not revoked \\(--force\\): kubelet-server serial ${server} `),
  );
  assert.ok(forced.stdout.includes(`\n  not revoked kubelet-server serial ${server} (`));
  assert.ok(forced.stdout.includes(`\n  revoked kubelet-client serial ${client} (`));
  assert.deepEqual(tree(n.root), WORKER_AFTER);
});

/** The state's record of every certificate issued (State.issued), as the tests read it. */
interface IssuedJson {
  kind: string;
  serial: string;
  revokedAt?: string;
  noRevocation?: true;
  keyKept?: true;
}
function issuedRecords(root: string): IssuedJson[] {
  const st = JSON.parse(readFileSync(join(root, "var/lib/node-join/state.json"), "utf8")) as {
    issued?: IssuedJson[];
  };
  return st.issued ?? [];
}
const keptKeyFile = (root: string, serial: string) =>
  join(root, "var/lib/node-join", `superseded-${serial}.key`);
/** The kubelet certificates' serials now: [client, server]. */
const kubeletSerials = (root: string) =>
  ["kubelet-client", "kubelet-server"].map((k) => kubeletLeaf(root, k).serial);

/**
 * A worker whose CA revokes only with the certificate's own key (as step-ca), renewed with
 * `renew --force` while revocations fail as `failure`: the superseded serials [client, server].
 */
async function renewedUnrevoked(
  failure: "down" | "refuse",
  lifetimeMs?: number,
): Promise<{ n: Joined; ca: FakeCa; old: [string, string]; renewed: Out }> {
  const n = await joined("worker", lifetimeMs);
  const ca = n.cas.kubernetes.withRevocation();
  ca.revokesWithKey = true;
  const old = kubeletSerials(n.root) as [string, string];
  ca.revokeFailure = failure;
  const renewed = await n.run("renew", "--force");
  assert.equal(renewed.code, 0, renewed.stderr);
  return { n, ca, old, renewed };
}

test("a renewal whose revocation of the superseded certificates fails: a warning, exit 0, the key kept 0600, revoked by the next run", async () => {
  const { n, ca, old, renewed: r } = await renewedUnrevoked("down");
  const [client, server] = old;
  for (const [kind, serial] of [
    ["kubelet-client", client],
    ["kubelet-server", server],
  ] as const) {
    assert.ok(
      r.stderr.includes(
        `node-join: warning: could not revoke superseded ${kind} serial ${serial} (${serialDecimal(serial)}) of CA kubernetes: CA kubernetes (fake) unreachable: connection refused; the next run retries\n`,
      ),
      r.stderr,
    );
    assert.equal(statSync(keptKeyFile(n.root, serial)).mode & 0o777, 0o600);
  }
  assert.deepEqual(ca.revoked, []);
  assert.deepEqual(
    issuedRecords(n.root).map((x) => [x.serial, x.keyKept ?? false]),
    [[client, true], [server, true], ...kubeletSerials(n.root).map((s) => [s, false])],
  );

  ca.revokeFailure = undefined;
  const signed = ca.signed.length;
  const again = await n.run("renew");
  assert.equal(again.code, 0, again.stderr);
  assert.equal(ca.signed.length, signed, "nothing was due");
  assert.deepEqual(ca.revoked, [
    `kubelet-client ${client} superseded`,
    `kubelet-server ${server} superseded`,
  ]);
  assert.ok(!existsSync(keptKeyFile(n.root, client)) && !existsSync(keptKeyFile(n.root, server)));
  assert.deepEqual(
    issuedRecords(n.root).map((x) => [x.serial, x.revokedAt !== undefined, x.keyKept ?? false]),
    [
      [client, true, false],
      [server, true, false],
      ...kubeletSerials(n.root).map((s) => [s, false, false]),
    ],
  );
  // leave --revoke then revokes the two installed ones; the superseded are done.
  const [newClient, newServer] = kubeletSerials(n.root) as [string, string];
  const left = await n.run("leave", "--yes", "--revoke");
  assert.equal(left.code, 0, left.stderr);
  assert.deepEqual(ca.revoked.slice(2), [
    `kubelet-client ${newClient} cessationOfOperation`,
    `kubelet-server ${newServer} cessationOfOperation`,
  ]);
});

test("leave --revoke revokes the superseded certificates a renewal could not, with their kept keys, and removes the keys", async () => {
  const { n, ca, old } = await renewedUnrevoked("refuse");
  const current = kubeletSerials(n.root) as [string, string];
  ca.revokeFailure = undefined;
  const left = await n.run("leave", "--yes", "--revoke", "--json");
  assert.equal(left.code, 0, left.stderr);
  const out = JSON.parse(left.stdout) as {
    revocations: { kind: string; serial: string; serialDecimal: string; revoked: boolean }[];
  };
  assert.deepEqual(
    out.revocations.map((x) => [x.kind, x.serial, x.serialDecimal, x.revoked]),
    [...current, ...old].map((s, i) => [
      i % 2 ? "kubelet-server" : "kubelet-client",
      s,
      serialDecimal(s),
      true,
    ]),
  );
  assert.deepEqual(
    [...ca.revoked].sort(),
    [...current, ...old]
      .map((s, i) => `${i % 2 ? "kubelet-server" : "kubelet-client"} ${s} cessationOfOperation`)
      .sort(),
  );
  assert.deepEqual(tree(n.root), WORKER_AFTER, "the kept keys are gone with the state");
});

test("the records of expired certificates are dropped from the state, and their kept keys removed", async () => {
  const { n, old } = await renewedUnrevoked("down", 30 * DAY);
  assert.ok(old.every((s) => existsSync(keptKeyFile(n.root, s))));
  assert.equal(issuedRecords(n.root).length, 4);
  // The first pair expires (and the second is due: renewed, superseded while still valid).
  n.clock.advance(31 * DAY);
  const later = await n.run("renew");
  assert.equal(later.code, 0, later.stderr);
  const records = issuedRecords(n.root);
  assert.deepEqual(
    records.filter((x) => old.includes(x.serial)),
    [],
    "expired records dropped",
  );
  assert.ok(
    old.every((s) => !existsSync(keptKeyFile(n.root, s))),
    "their keys removed",
  );
  assert.deepEqual(
    records.map((x) => x.serial).sort(),
    [...kubeletSerials(n.root)].sort(),
    "the installed ones only: the second pair expired too",
  );
});

/**
 * What a control-plane join leaves once node-join left, the manifests aside: the config with the
 * operator's hook (changed since node-join wrote it) and the operator's sa pair.
 */
const CP_AFTER = [
  "etc",
  "etc/kubernetes",
  "etc/node-join",
  "etc/node-join/config.yaml",
  "etc/node-join/sa.key",
  "etc/node-join/sa.pub",
  "var",
  "var/lib",
  "var/lib/kubelet",
];
const cpTree = (root: string) =>
  tree(root).filter((p) => !p.startsWith("etc/kubernetes/manifests"));

/** A control plane with its static pod manifests and a hooks.preLeave that records its runs. */
async function controlPlane(stop: string): Promise<Joined & { log: string; config: string }> {
  const n = await joined("control-plane");
  const manifests = join(n.root, "etc/kubernetes/manifests");
  mkdirSync(manifests, { recursive: true });
  for (const pod of ["kube-apiserver", "etcd", "haproxy"])
    writeFileSync(join(manifests, `${pod}.yaml`), `# ${pod}\n`);
  const log = join(n.root, "stop.log");
  const config = join(n.root, "etc/node-join/config.yaml");
  appendFileSync(config, `hooks:\n  preLeave:\n    - [sh, -c, '${stop}']\n`);
  return { ...n, log, config };
}

test("a control plane: the static pod manifests move away and hooks.preLeave stops the kubelet before anything goes", async () => {
  const n = await controlPlane(`ls ${"$NODE_JOIN_ROOT"}/etc/kubernetes/manifests >> stop.log`);
  const cwd = process.cwd();
  process.chdir(n.root);
  let r: Out;
  try {
    r = await n.run("leave", "--yes");
  } finally {
    process.chdir(cwd);
  }
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split("\n");
  const m = (f: string) => join(n.root, "etc/kubernetes/manifests", f);
  const left = (f: string) => join(n.root, "etc/kubernetes/manifests.node-join-left", f);
  assert.deepEqual(lines.slice(1, 4), [
    `  moved ${m("kube-apiserver.yaml")} to ${left("kube-apiserver.yaml")}`,
    `  moved ${m("etcd.yaml")} to ${left("etcd.yaml")}`,
    `  ran sh -c ls $NODE_JOIN_ROOT/etc/kubernetes/manifests >> stop.log`,
  ]);
  // The hook ran with the control-plane manifests already gone, the others still there.
  assert.equal(readFileSync(n.log, "utf8"), "haproxy.yaml\n");
  assert.deepEqual(readdirSync(join(n.root, "etc/kubernetes/manifests.node-join-left")).sort(), [
    "etcd.yaml",
    "kube-apiserver.yaml",
  ]);
  // The config carries the operator's hook: changed since node-join wrote it, so kept.
  assert.ok(lines.includes(`  kept ${n.config} (changed since node-join wrote it)`));
  assert.match(lines[0]!, /^left control-plane node cp1: removed 30 file\(s\), kept 1$/);
  assert.deepEqual(cpTree(n.root), [...CP_AFTER.slice(0, 6), "stop.log", ...CP_AFTER.slice(6)]);
});

test("a control plane whose kubelet stop fails keeps everything: the manifests are put back (exit 1)", async () => {
  const n = await controlPlane("exit 3");
  const before = snapshot(n.root);
  const r = await n.run("leave", "--yes");
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /\nnode-join: error: leave stopped before removing anything: hook "sh -c exit 3" exited 3\n$/,
  );
  assert.deepEqual(snapshot(n.root), before);
});

class CrashStop extends Error {}

for (const step of ["stage", "journal", "remove:0", "remove:5", "done"]) {
  test(`a leave stopped at step "${step}" leaves the node joined (stage) or, after recovery, left`, async () => {
    const n = await controlPlane("true");
    const copy = tempRoot("nj-leave-crash-");
    // What a SIGKILL at this step leaves on disk: the tree as it is then, put back in its place.
    const seams: RuntimeSeams = {
      crashPoint: (at) => {
        if (at !== step) return;
        rmSync(copy, { recursive: true, force: true });
        cpSync(n.root, copy, { recursive: true, verbatimSymlinks: true });
        throw new CrashStop(at);
      },
    };
    const crashed = await onTerminal(n, ["--yes"], undefined, seams);
    assert.equal(crashed.code, 1, crashed.stderr);
    rmSync(n.root, { recursive: true, force: true });
    cpSync(copy, n.root, { recursive: true, verbatimSymlinks: true });
    writeFileSync(
      join(n.root, "var/lib/node-join/lock"),
      `${readFileSync("/proc/sys/kernel/pid_max", "utf8").trim()}\n`,
    );
    if (step === "stage") {
      // Before the journal: still joined. The next run puts the manifests back and renews nothing.
      const renew = await n.run("renew");
      assert.equal(renew.code, 0, renew.stderr);
      assert.match(
        renew.stderr,
        /recovered an interrupted run: .* 2 static pod manifest\(s\) restored/,
      );
      assert.equal(renew.stdout.split("\n")[0]?.startsWith("nothing to renew"), true, renew.stdout);
      assert.ok(existsSync(join(n.root, "etc/kubernetes/manifests/etcd.yaml")));
      return;
    }
    if (step !== "done") {
      // After the journal: left. The timer's renew completes the leave and stops there.
      const renew = await n.run("renew");
      assert.equal(renew.code, 2, renew.stdout);
      assert.match(
        renew.stderr,
        /node-join: error: node-join left this root: an interrupted node-join leave was completed now; run node-join join to join it again\n$/,
      );
    }
    const again = await n.run("leave", "--yes");
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.stdout.startsWith("nothing to do"), again.stdout);
    assert.deepEqual(cpTree(n.root), CP_AFTER);
    assert.deepEqual(readdirSync(join(n.root, "etc/kubernetes/manifests.node-join-left")).sort(), [
      "etcd.yaml",
      "kube-apiserver.yaml",
    ]);
  });
}

test("the metrics textfile goes when it holds node-join's metrics, and is kept when it does not", async () => {
  const n = await joined("worker");
  const dir = join(n.root, "var/lib/node_exporter/textfile_collector");
  mkdirSync(dir, { recursive: true });
  const prom = join(dir, "node_join.prom");
  appendFileSync(join(n.root, "etc/node-join/config.yaml"), `metrics:\n  textfile: ${prom}\n`);
  writeFileSync(prom, "# HELP other_metric something else\n");
  const dry = await n.run("leave", "--dry-run");
  assert.ok(
    dry.stdout.includes(
      `\n  would keep ${prom} (not written by node-join (no record of it in its state file))\n`,
    ),
    dry.stdout,
  );
  writeFileSync(prom, "# HELP node_join_last_run_success 1 if the last run succeeded\n");
  const r = await n.run("leave", "--yes");
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(`\n  removed ${prom}\n`), r.stdout);
  assert.ok(!existsSync(prom));
});

/** A state file entry for `rel` with the digest of what is there now, as a crafted one would. */
function recordAsWritten(n: Joined, rel: string): void {
  const state = join(n.root, "var/lib/node-join/state.json");
  const st = JSON.parse(readFileSync(state, "utf8")) as { files: Record<string, string> };
  const digest = createHash("sha256")
    .update(readFileSync(join(n.root, rel)))
    .digest("hex");
  st.files[rel] = `sha256:${digest}`;
  writeFileSync(state, JSON.stringify(st));
}

/** An operator's file node-join never writes for the role: admin.conf on a worker, a CA key. */
const FOREIGN = [
  { role: "worker", rel: "etc/kubernetes/admin.conf" },
  { role: "control-plane", rel: "etc/kubernetes/pki/ca.key" },
] as const;

for (const f of FOREIGN) {
  test(`a state file naming ${f.rel} on a ${f.role}, with its digest, does not make leave remove it: kept and listed`, async () => {
    const n = await joined(f.role);
    const file = join(n.root, f.rel);
    writeFileSync(file, "# the operator's, not node-join's\n", { mode: 0o600 });
    recordAsWritten(n, f.rel);
    const dry = await n.run("leave", "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    const why = `(not a file node-join writes for a ${f.role})`;
    assert.ok(dry.stdout.includes(`  would keep ${file} ${why}\n`), dry.stdout);
    assert.ok(!dry.stdout.includes(`would remove ${file}\n`), dry.stdout);
    const r = await n.run("leave", "--yes");
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`  kept ${file} ${why}\n`), r.stdout);
    assert.equal(readFileSync(file, "utf8"), "# the operator's, not node-join's\n");
  });

  test(`a planted leave journal naming ${f.rel} on a ${f.role} does not make recovery remove it`, async () => {
    const n = await joined(f.role);
    const file = join(n.root, f.rel);
    writeFileSync(file, "# the operator's, not node-join's\n", { mode: 0o600 });
    const journal = { version: 3, moves: [], removes: [f.rel], parked: [], dropBackups: false };
    writeFileSync(join(n.root, "var/lib/node-join/journal.json"), JSON.stringify(journal));
    const r = await n.run("leave", "--yes");
    assert.ok(existsSync(file), `${f.rel} removed: exit ${r.code}\n${r.stdout}${r.stderr}`);
    assert.equal(readFileSync(file, "utf8"), "# the operator's, not node-join's\n");
    assert.match(
      r.stderr,
      new RegExp(`kept ${file} \\(not a file node-join writes for a ${f.role}\\)`),
    );
  });
}
