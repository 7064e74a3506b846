// The install transaction (agent/store/transaction.ts), in process on temp roots. The crash tests
// freeze the tree at each step of a commit and put that frozen tree back in place of the root: that
// is exactly what a SIGKILL at the step leaves on disk, without spawning a process (the end-to-end
// "kill -9 at install step" tests in test/e2e/renew.test.ts do the same through the CLI).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { LocalIoError } from "../../agent/common/errors.js";
import { STAGED_SUFFIX } from "../../agent/store/fsio.js";
import { layout, type Layout } from "../../agent/store/layout.js";
import { BACKUPS_KEPT, commit, recover, type FileChange } from "../../agent/store/transaction.js";
import { diffSnapshots, snapshot } from "../helpers/fs.js";
import { scratchRoots } from "../helpers/fixture.js";

const { newRoot, made } = scratchRoots("nj-tx-");

const T0 = new Date("2026-01-01T00:00:00Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

/** Two directories, a public and two private modes: the shape of a kubeadm PKI set. */
const SET = [
  { rel: "etc/kubernetes/pki/ca.crt", mode: 0o644 },
  { rel: "etc/kubernetes/pki/apiserver.key", mode: 0o600 },
  { rel: "var/lib/kubelet/pki/kubelet.key", mode: 0o600 },
] as const;

const contentOf = (version: string, rel: string) => `${version} ${rel}\n`;

function changes(root: string, version: string): FileChange[] {
  return SET.map((f) => ({
    path: join(root, f.rel),
    content: contentOf(version, f.rel),
    mode: f.mode,
  }));
}

/** What is at each path of the set: a regular file's mode and content, or what else is there. */
function readSet(root: string): string[] {
  return SET.map((f) => {
    const p = join(root, f.rel);
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) return `${f.rel}: missing`;
    if (!st.isFile()) return `${f.rel}: not a regular file`;
    return `${f.rel}: ${(st.mode & 0o7777).toString(8)} ${readFileSync(p, "utf8")}`;
  });
}

const expectedSet = (version: string) =>
  SET.map((f) => `${f.rel}: ${f.mode.toString(8)} ${contentOf(version, f.rel)}`);

/** Every path under `root` whose name carries node-join's temp or stage marker. */
function leftovers(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.name.includes(".node-join-")) out.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out.sort();
}

const modeOf = (p: string) => lstatSync(p).mode & 0o7777;
const stagedOf = (p: string) => join(dirname(p), `.${basename(p)}${STAGED_SUFFIX}`);

test("commit writes exact modes whatever the umask", () => {
  const root = newRoot();
  const l = layout(root);
  // A restrictive umask would turn kubeadm's 0644 certificates into 0600 ones that non-root
  // readers (kube-proxy, monitoring) can no longer open.
  const saved = process.umask(0o077);
  try {
    commit(changes(root, "v1"), l, T0);
  } finally {
    process.umask(saved);
  }
  assert.deepEqual(readSet(root), expectedSet("v1"));
  assert.equal(modeOf(join(root, "etc/kubernetes/pki/ca.crt")), 0o644);
  assert.equal(modeOf(join(root, "etc/kubernetes/pki/apiserver.key")), 0o600);
});

test("commit replaces a symlink planted at a target or a stage name instead of writing through it", () => {
  const root = newRoot();
  const l = layout(root);
  const outside = newRoot("nj-tx-outside-");
  const victim = join(outside, "victim");
  const victimOfStage = join(outside, "victim-of-stage");
  writeFileSync(victim, "precious\n", { mode: 0o600 });
  writeFileSync(victimOfStage, "precious too\n", { mode: 0o600 });
  const target = join(root, "etc/kubernetes/pki/ca.crt");
  mkdirSync(dirname(target), { recursive: true });
  symlinkSync(victim, target);
  symlinkSync(victimOfStage, stagedOf(join(root, "etc/kubernetes/pki/apiserver.key")));

  const r = commit(changes(root, "v1"), l, T0);

  assert.equal(readFileSync(victim, "utf8"), "precious\n");
  assert.equal(modeOf(victim), 0o600);
  assert.equal(readFileSync(victimOfStage, "utf8"), "precious too\n");
  assert.deepEqual(readSet(root), expectedSet("v1"));
  // What was replaced is kept as it was, a link, not a copy of a file node-join does not own.
  assert.ok(r.backup);
  const saved = join(r.backup, "etc/kubernetes/pki/ca.crt");
  assert.ok(lstatSync(saved).isSymbolicLink());
  assert.equal(readlinkSync(saved), victim);
  assert.deepEqual(leftovers(root), []);
});

test("commit skips unchanged files: same content and mode is neither rewritten nor backed up", () => {
  const root = newRoot();
  const l = layout(root);
  const first = commit(changes(root, "v1"), l, T0);
  assert.deepEqual(
    first.changed,
    SET.map((f) => join(root, f.rel)),
  );
  assert.equal(first.backup, undefined, "nothing was replaced");

  const again = commit(changes(root, "v1"), l, at(1));
  assert.deepEqual(again, { changed: [], files: [] });
  assert.ok(!existsSync(l.backupDir), "no backup for a no-op");

  // One new content, one mode-only change, one untouched.
  const untouched = join(root, SET[2].rel);
  const inode = lstatSync(untouched).ino;
  const next = changes(root, "v1");
  next[0] = { ...next[0]!, content: contentOf("v2", SET[0].rel) } as FileChange;
  next[1] = { ...next[1]!, mode: 0o640 } as FileChange;
  const r = commit(next, l, at(2));
  assert.deepEqual(r.changed, [join(root, SET[0].rel), join(root, SET[1].rel)]);
  assert.equal(modeOf(join(root, SET[1].rel)), 0o640);
  assert.equal(lstatSync(untouched).ino, inode, "the unchanged file was not replaced");
  assert.ok(r.backup);
  assert.ok(existsSync(join(r.backup, SET[0].rel)) && existsSync(join(r.backup, SET[1].rel)));
  assert.ok(!existsSync(join(r.backup, SET[2].rel)), "only what is replaced is backed up");
});

test("commit backs up what it replaces and keeps the last 3 backups", () => {
  assert.equal(BACKUPS_KEPT, 3);
  const root = newRoot();
  const l = layout(root);
  commit(changes(root, "v0"), l, T0);
  const backups: string[] = [];
  for (let v = 1; v <= 5; v++) {
    const r = commit(changes(root, `v${v}`), l, at(v));
    assert.ok(r.backup, `commit v${v} replaced files`);
    backups.push(r.backup);
    for (const f of SET) {
      const saved = join(r.backup, f.rel);
      assert.equal(
        readFileSync(saved, "utf8"),
        contentOf(`v${v - 1}`, f.rel),
        `backup of ${f.rel} holds what v${v} replaced`,
      );
      // A key's backup must not be more readable than the key was.
      assert.equal(modeOf(saved), f.mode, `mode of the backup of ${f.rel}`);
    }
  }
  assert.deepEqual(
    readdirSync(l.backupDir).sort(),
    backups.slice(-3).map((b) => basename(b)),
  );
  assert.ok(!existsSync(backups[0]!) && !existsSync(backups[1]!));

  // Two commits in the same second get two backups: the earlier one is not overwritten.
  const same = commit(changes(root, "v6"), l, at(5));
  assert.equal(basename(same.backup!), `${basename(backups[4]!)}-1`);
  assert.equal(readFileSync(join(backups[4]!, SET[0].rel), "utf8"), contentOf("v4", SET[0].rel));
  assert.equal(readFileSync(join(same.backup!, SET[0].rel), "utf8"), contentOf("v5", SET[0].rel));
  assert.equal(readdirSync(l.backupDir).length, 3);
});

class CrashStop extends Error {}

/**
 * A root holding the old set, then the tree as a commit of the new set left it at `step`: the
 * in-process commit is abandoned there and the tree frozen at that moment is put back at the
 * root's path (the journal records absolute paths, so recovery must see the tree where it was).
 */
function crashedAt(step: string): Layout {
  const root = newRoot();
  const l = layout(root);
  commit(changes(root, "old"), l, T0);
  const frozen = `${root}.frozen`;
  made.push(frozen);
  let reached = false;
  assert.throws(
    () =>
      commit(changes(root, "new"), l, at(1), (s) => {
        if (s !== step) return;
        reached = true;
        cpSync(root, frozen, { recursive: true, verbatimSymlinks: true });
        throw new CrashStop(s);
      }),
    CrashStop,
  );
  assert.ok(reached, `the commit reached ${step}`);
  rmSync(root, { recursive: true });
  renameSync(frozen, root);
  return l;
}

const STEPS: {
  step: string;
  journal: boolean;
  rolledForward: number;
  removedStages: boolean;
  after: "old" | "new";
}[] = [
  { step: "stage", journal: false, rolledForward: 0, removedStages: true, after: "old" },
  { step: "journal", journal: true, rolledForward: 3, removedStages: false, after: "new" },
  { step: "move:0", journal: true, rolledForward: 2, removedStages: false, after: "new" },
  { step: "move:1", journal: true, rolledForward: 1, removedStages: false, after: "new" },
  { step: "move:2", journal: true, rolledForward: 0, removedStages: false, after: "new" },
  { step: "done", journal: false, rolledForward: 0, removedStages: false, after: "new" },
];

for (const s of STEPS) {
  test(`crash at "${s.step}": recovery leaves the set entirely ${s.after}, no stages, no journal`, () => {
    const l = crashedAt(s.step);
    assert.equal(
      existsSync(l.journalFile),
      s.journal,
      `journal on disk after a crash at ${s.step}`,
    );
    const rec = recover(l);
    assert.deepEqual(readSet(l.root), expectedSet(s.after));
    assert.deepEqual(leftovers(l.root), []);
    assert.ok(!existsSync(l.journalFile));
    assert.equal(rec.rolledForward, s.rolledForward);
    assert.deepEqual(
      [...rec.removed].sort(),
      s.removedStages ? SET.map((f) => stagedOf(join(l.root, f.rel))).sort() : [],
    );
  });
}

// The same crash, recovered from a copy of the tree at another path: a root prepared under --root
// /mnt/x and booted at /, or restored elsewhere from a backup. With absolute paths in the journal,
// recovery rolled the original path forward and left the copy mixed; the journal names files
// relative to the root.
test("a crashed tree recovered at another path is rolled forward there", () => {
  const root = newRoot();
  const copy = newRoot("nj-tx-copy-");
  commit(changes(root, "old"), layout(root), T0);
  assert.throws(
    () =>
      commit(changes(root, "new"), layout(root), at(1), (s) => {
        if (s !== "move:0") return;
        cpSync(root, copy, { recursive: true, verbatimSymlinks: true });
        throw new CrashStop(s);
      }),
    CrashStop,
  );
  recover(layout(copy));
  assert.deepEqual(readSet(copy), expectedSet("new"));
  assert.deepEqual(leftovers(copy), []);
});

test("a torn or empty journal counts as never committed: old set kept, stages removed", () => {
  for (const torn of ["half", "empty"] as const) {
    // At "journal" the stages are all there and no target has moved yet.
    const l = crashedAt("journal");
    const text = readFileSync(l.journalFile, "utf8");
    writeFileSync(l.journalFile, torn === "half" ? text.slice(0, Math.floor(text.length / 2)) : "");
    const rec = recover(l);
    assert.deepEqual(readSet(l.root), expectedSet("old"), torn);
    assert.equal(rec.rolledForward, 0, torn);
    assert.deepEqual(
      [...rec.removed].sort(),
      SET.map((f) => stagedOf(join(l.root, f.rel))).sort(),
      torn,
    );
    assert.deepEqual(leftovers(l.root), [], torn);
    assert.ok(!existsSync(l.journalFile), torn);
  }
});

test("a journal whose staged files were already moved is completed without error, and recovery is idempotent", () => {
  const l = crashedAt("move:2");
  const journal = JSON.parse(readFileSync(l.journalFile, "utf8")) as {
    moves: { staged: string }[];
  };
  assert.equal(journal.moves.length, 3);
  assert.ok(
    journal.moves.every((m) => !existsSync(m.staged)),
    "every staged file is gone",
  );
  assert.deepEqual(recover(l), { rolledForward: 0, removed: [], kept: [], left: false });
  assert.deepEqual(readSet(l.root), expectedSet("new"));
  assert.ok(!existsSync(l.journalFile));
  const before = snapshot(l.root);
  assert.deepEqual(recover(l), { rolledForward: 0, removed: [], kept: [], left: false });
  assert.deepEqual(diffSnapshots(before, snapshot(l.root)), []);
});

/**
 * A commit that must fail before its journal: typed error, exit 6, and the tree exactly as it was.
 */
function assertFailsCleanly(l: Layout, set: FileChange[], names: RegExp): void {
  const before = snapshot(l.root);
  assert.throws(
    () => commit(set, l, at(1)),
    (err: unknown) => {
      assert.ok(err instanceof LocalIoError, `a LocalIoError, not ${String(err)}`);
      assert.equal(err.exitCode, 6);
      assert.match(err.message, names);
      return true;
    },
  );
  assert.deepEqual(diffSnapshots(before, snapshot(l.root)), []);
}

/**
 * The old set plus a file in a directory that does not exist yet (created, then removed on
 * failure).
 */
function oldRootAndNewSet(): { l: Layout; set: FileChange[] } {
  const root = newRoot();
  const l = layout(root);
  commit(changes(root, "old"), l, T0);
  const set = [
    ...changes(root, "new"),
    {
      path: join(root, "etc/kubernetes/kubelet.conf.d/10-join.conf"),
      content: "new\n",
      mode: 0o600,
    },
  ];
  return { l, set };
}

test("a commit failing after every file was staged (its backup directory is a regular file) leaves the tree as it was", () => {
  const { l, set } = oldRootAndNewSet();
  writeFileSync(l.backupDir, "not a directory\n");
  assertFailsCleanly(l, set, /var\/lib\/node-join\/backup/);
});

test("a commit failing halfway through staging (a planted symlinked directory) leaves the tree as it was and writes nothing through the link", () => {
  const { l, set } = oldRootAndNewSet();
  const outside = newRoot("nj-tx-outside-");
  symlinkSync(outside, join(l.pkiDir, "etcd"));
  // Last, so that the other files are staged (and kubelet.conf.d created) before it fails.
  set.push({ path: join(l.pkiDir, "etcd/ca.crt"), content: "new\n", mode: 0o644 });
  assertFailsCleanly(l, set, /etc\/kubernetes\/pki\/etcd.*symbolic link/);
  assert.deepEqual(readdirSync(outside), []);
});

test("a commit whose target sits under a regular file fails with a LocalIoError and changes nothing", () => {
  const { l, set } = oldRootAndNewSet();
  writeFileSync(join(l.pkiDir, "etcd"), "a file where a directory belongs\n");
  set.push({ path: join(l.pkiDir, "etcd/ca.crt"), content: "new\n", mode: 0o644 });
  assertFailsCleanly(l, set, /etc\/kubernetes\/pki\/etcd\/ca\.crt/);
});

test("a directory at a target refuses the whole set before anything is staged or journalled", () => {
  const { l, set } = oldRootAndNewSet();
  // Last in the set: before the check, the moves before it were done when its rename failed
  // (EISDIR), the journal stayed behind and every later run failed on it.
  const target = join(l.kubernetesDir, "kubelet.conf");
  mkdirSync(join(target, "inside"), { recursive: true });
  set.push({ path: target, content: "new\n", mode: 0o600 });
  assertFailsCleanly(l, set, /cannot install .*kubelet\.conf: it is a directory, not a file/);
  assert.ok(!existsSync(l.journalFile));
  assert.deepEqual(readSet(l.root), expectedSet("old"));
});

/** A root with the old set, a file outside it and a staged file a planted journal points at. */
function plantedJournal(journal: unknown, stage?: { rel: string; dir?: boolean }) {
  const root = newRoot();
  const l = layout(root);
  commit(changes(root, "old"), l, T0);
  const outside = newRoot("nj-tx-outside-");
  writeFileSync(join(outside, "victim"), "precious\n");
  if (stage) {
    const p = join(root, stage.rel);
    mkdirSync(dirname(p), { recursive: true });
    if (stage.dir) mkdirSync(p);
    else writeFileSync(p, "planted\n", { mode: 0o600 });
  }
  writeFileSync(
    l.journalFile,
    typeof journal === "string" ? journal : JSON.stringify(journal).replaceAll("@OUT", outside),
  );
  return { l, outside };
}

const PLANTED: { name: string; journal: unknown; stage?: { rel: string; dir?: boolean } }[] = [
  {
    name: "a relative target with ..",
    journal: {
      version: 2,
      moves: [{ staged: "etc/kubernetes/pki/.x.node-join-new", target: "../../../@OUT/victim" }],
    },
    stage: { rel: "etc/kubernetes/pki/.x.node-join-new" },
  },
  {
    name: "an absolute path in version 2",
    journal: {
      version: 2,
      moves: [{ staged: "etc/kubernetes/pki/.victim.node-join-new", target: "@OUT/victim" }],
    },
    stage: { rel: "etc/kubernetes/pki/.victim.node-join-new" },
  },
  {
    name: "a version 1 target outside the root",
    journal: {
      version: 1,
      moves: [{ staged: "@OUT/.victim.node-join-new", target: "@OUT/victim" }],
    },
  },
  {
    name: "a staged name that is not the stage of its target",
    journal: {
      version: 2,
      moves: [{ staged: "etc/node-join/evil", target: "etc/kubernetes/pki/ca.crt" }],
    },
    stage: { rel: "etc/node-join/evil" },
  },
  {
    name: "a target outside the managed directories",
    journal: {
      version: 2,
      moves: [{ staged: "etc/.shadow.node-join-new", target: "etc/shadow" }],
    },
    stage: { rel: "etc/.shadow.node-join-new" },
  },
  {
    name: "a target below a managed directory, not in it",
    journal: {
      version: 2,
      moves: [
        { staged: "etc/kubernetes/pki/x/.y.node-join-new", target: "etc/kubernetes/pki/x/y" },
      ],
    },
    stage: { rel: "etc/kubernetes/pki/x/.y.node-join-new" },
  },
  {
    name: "a directory as the target",
    journal: {
      version: 2,
      moves: [{ staged: "etc/kubernetes/.pki.node-join-new", target: "etc/kubernetes/pki" }],
    },
    stage: { rel: "etc/kubernetes/.pki.node-join-new" },
  },
  {
    name: "a directory as the stage",
    journal: {
      version: 2,
      moves: [
        {
          staged: "etc/kubernetes/.kubelet.conf.node-join-new",
          target: "etc/kubernetes/kubelet.conf",
        },
      ],
    },
    stage: { rel: "etc/kubernetes/.kubelet.conf.node-join-new", dir: true },
  },
  {
    name: "an unknown version",
    journal: {
      version: 3,
      moves: [
        { staged: "etc/kubernetes/pki/.ca.crt.node-join-new", target: "etc/kubernetes/pki/ca.crt" },
      ],
    },
    stage: { rel: "etc/kubernetes/pki/.ca.crt.node-join-new" },
  },
  { name: "no list of moves", journal: { version: 2, moves: "all" } },
  { name: "a JSON value that is no journal", journal: "null" },
];

for (const c of PLANTED) {
  test(`recovery refuses a journal naming ${c.name}: exit 6 naming the journal, nothing moved`, () => {
    const { l, outside } = plantedJournal(c.journal, c.stage);
    const before = snapshot(l.root);
    const beforeOutside = snapshot(outside);
    assert.throws(
      () => recover(l),
      (err: unknown) => {
        assert.ok(err instanceof LocalIoError, `a LocalIoError, not ${String(err)}`);
        assert.equal(err.exitCode, 6);
        assert.ok(err.message.includes(`refusing the journal ${l.journalFile}`), err.message);
        return true;
      },
    );
    assert.deepEqual(
      diffSnapshots(before, snapshot(l.root)),
      [],
      "the journal and stages are left",
    );
    assert.deepEqual(diffSnapshots(beforeOutside, snapshot(outside)), []);
    assert.equal(readFileSync(join(outside, "victim"), "utf8"), "precious\n");
  });
}

test("recovery refuses a journal that is a symbolic link, and never reads through it", () => {
  const { l, outside } = plantedJournal("{}");
  rmSync(l.journalFile);
  const real = join(outside, "journal.json");
  writeFileSync(
    real,
    JSON.stringify({
      version: 2,
      moves: [
        { staged: "etc/kubernetes/pki/.ca.crt.node-join-new", target: "etc/kubernetes/pki/ca.crt" },
      ],
    }),
  );
  writeFileSync(stagedOf(join(l.pkiDir, "ca.crt")), "planted\n");
  symlinkSync(real, l.journalFile);
  assert.throws(() => recover(l), /refusing the journal .*: it is a symbolic link/);
  assert.deepEqual(readSet(l.root), expectedSet("old"));
});

test("a version 1 journal (absolute paths under the root) left by an older node-join is still completed", () => {
  const l = crashedAt("move:0");
  const v2 = JSON.parse(readFileSync(l.journalFile, "utf8")) as {
    moves: { staged: string; target: string }[];
  };
  writeFileSync(
    l.journalFile,
    JSON.stringify({
      version: 1,
      moves: v2.moves.map((m) => ({
        staged: join(l.root, m.staged),
        target: join(l.root, m.target),
      })),
    }),
  );
  const rec = recover(l);
  assert.equal(rec.rolledForward, 2);
  assert.deepEqual(readSet(l.root), expectedSet("new"));
  assert.ok(!existsSync(l.journalFile));
});

test("a leave journal's removals outside what node-join writes for the role are kept, not removed", () => {
  const { l } = plantedJournal({
    version: 3,
    moves: [],
    removes: [
      "etc/kubernetes/pki/ca.key",
      "etc/kubernetes/admin.conf",
      "etc/kubernetes/pki/ca.crt",
    ],
    parked: [],
  });
  const key = join(l.pkiDir, "ca.key");
  const admin = join(l.kubernetesDir, "admin.conf");
  writeFileSync(key, "the cluster's CA key\n", { mode: 0o600 });
  writeFileSync(admin, "the operator's kubeconfig\n", { mode: 0o600 });
  // What node-join writes for this node (engine/written.ts): here the CA certificate alone.
  const rec = recover(l, [join(l.pkiDir, "ca.crt")]);
  assert.deepEqual(rec.kept, [key, admin]);
  assert.equal(rec.left, true);
  assert.equal(readFileSync(key, "utf8"), "the cluster's CA key\n");
  assert.equal(readFileSync(admin, "utf8"), "the operator's kubeconfig\n");
  assert.ok(!existsSync(join(l.pkiDir, "ca.crt")), "what node-join writes is removed");
});
