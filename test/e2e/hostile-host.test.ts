// A host tree that may be hostile: a planted journal, symlinked or foreign-owned directories, a
// lock that names a reused pid or is a FIFO, a directory where a file belongs, config and secret
// files another user may change, an empty --root. node-join runs as root, as a separate process,
// against a real CFSSL (and a real step-ca for its secret files); each refusal is one line with
// the documented exit code, and nothing under the root changes. "Another user" is nobody (65534),
// made the owner with chown: these tests must run as root, and fail, not skip, otherwise.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cfsslControlPlaneJoin, cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { installControlPlaneSecrets, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { binary, json, runCli } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { startProxy, type Proxy } from "../helpers/proxy.js";
import { startStepCa, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";
import { saKeyDir } from "../helpers/sa-keys.js";

const NOBODY = 65534;
const PKI = "var/lib/kubelet/pki";
const JOURNAL = "var/lib/node-join/journal.json";
const LOCK = "var/lib/node-join/lock";

let ca: CfsslCa;
/** In front of `ca`, counting what reaches it: a refusal must come before any CA contact. */
let proxy: Proxy;
let step: StepCaHandle;
let saDir: string;

before(async () => {
  assert.equal(
    process.geteuid?.(),
    0,
    "test/e2e/hostile-host.test.ts runs node-join as root and gives files to nobody (65534) with chown: run it as root",
  );
  [ca, step] = await Promise.all([startCfssl(), startStepCa()]);
  proxy = await startProxy(ca.url, () => ({ type: "forward" }));
  saDir = saKeyDir("nj-sa-");
});
after(async () => {
  await proxy?.close();
  await Promise.all([ca?.stop(), step?.stop()]);
});

const keyFile = (root: string) => join(root, "etc/node-join/ca-auth.key");

/** The standard worker join through the counting proxy. */
function joinArgs(root: string, extra: string[] = []): string[] {
  return [
    ...cfsslWorkerJoin(
      root,
      { url: proxy.url, pin: ca.pin },
      { "ca-auth-key-file": keyFile(root) },
    ),
    ...extra,
  ];
}

/** A root with its auth key in place, nothing joined yet. */
function freshRoot(): string {
  const root = tempRoot("nj-hostile-");
  ca.installAuthKey(root);
  return root;
}

/** A root where a worker join succeeded. */
async function joinedRoot(): Promise<string> {
  const root = freshRoot();
  const r = await runCli(joinArgs(root));
  assert.equal(r.code, 0, r.stderr);
  return root;
}

/** Runs `fn` and returns how many requests reached the CA meanwhile. */
async function caRequestsDuring(fn: () => Promise<unknown>): Promise<number> {
  const before_ = proxy.requests.length;
  await fn();
  return proxy.requests.length - before_;
}

// ---- 5: a planted journal ----------------------------------------------------------------------

test("a planted journal naming a file outside the root, a foreign stage or an unmanaged target is refused before any CA contact (exit 6), nothing moved", async () => {
  const outside = tempRoot("nj-hostile-outside-");
  const victim = join(outside, "victim");
  const cases: { name: string; journal: object; stage?: string }[] = [
    {
      name: "a relative target with ..",
      journal: {
        version: 2,
        moves: [
          { staged: "etc/kubernetes/pki/.victim.node-join-new", target: `../../..${victim}` },
        ],
      },
      stage: "etc/kubernetes/pki/.victim.node-join-new",
    },
    {
      name: "a version 1 target outside the root",
      journal: {
        version: 1,
        moves: [{ staged: join(outside, ".victim.node-join-new"), target: victim }],
      },
    },
    {
      name: "a stage that is not beside its target",
      journal: {
        version: 2,
        moves: [{ staged: "etc/node-join/ca-auth.key", target: "etc/kubernetes/pki/ca.crt" }],
      },
    },
    {
      name: "a target outside the managed directories",
      journal: {
        version: 2,
        moves: [{ staged: "etc/.passwd.node-join-new", target: "etc/passwd" }],
      },
      stage: "etc/.passwd.node-join-new",
    },
  ];
  for (const c of cases) {
    writeFileSync(victim, "precious\n");
    writeFileSync(join(outside, ".victim.node-join-new"), "planted\n");
    const root = await joinedRoot();
    if (c.stage) writeFileSync(join(root, c.stage), "planted\n", { mode: 0o600 });
    writeFileSync(join(root, JOURNAL), JSON.stringify(c.journal));
    const outsideBefore = snapshot(outside);
    for (const args of [
      [...joinArgs(root), "--force"],
      ["renew", "--root", root, "--force"],
    ]) {
      const asked = await caRequestsDuring(() =>
        expectFailure(
          args,
          6,
          new RegExp(`refusing the journal ${root}/${JOURNAL}: .*nothing was moved`),
          root,
        ),
      );
      assert.equal(asked, 0, `${c.name}: ${args[0]} asked the CA before refusing`);
    }
    assert.deepEqual(diffSnapshots(outsideBefore, snapshot(outside)), [], c.name);
    assert.equal(readFileSync(victim, "utf8"), "precious\n", c.name);
    // Left for the operator; once it is gone, runs go on.
    rmSync(join(root, JOURNAL));
    const again = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(again.code, 0, `${c.name}: ${again.stderr}`);
  }
});

// ---- 6: symlinked and foreign-owned directories ------------------------------------------------

test("a symlinked manifests or paused-manifests directory is refused (exit 6), by renew and by restart-static-pods; nothing leaves the root", async () => {
  for (const dir of ["etc/kubernetes/manifests", "etc/kubernetes/node-join-paused-manifests"]) {
    const root = await joinedRoot();
    const outside = tempRoot("nj-hostile-outside-");
    writeFileSync(join(outside, "kube-apiserver.yaml"), "apiVersion: v1\n");
    if (dir.endsWith("paused-manifests")) {
      mkdirSync(join(root, "etc/kubernetes/manifests"));
      writeFileSync(join(root, "etc/kubernetes/manifests/kube-apiserver.yaml"), "apiVersion: v1\n");
    }
    symlinkSync(outside, join(root, dir));
    const why = new RegExp(`refusing to write under ${root}/${dir}: it is a symbolic link`);
    await expectFailure(["renew", "--root", root, "--force"], 6, why, root);
    const before_ = snapshot(root);
    const outsideBefore = snapshot(outside);
    const r = await runCli([
      "restart-static-pods",
      "--root",
      root,
      "--wait",
      "0s",
      "kube-apiserver",
    ]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, why);
    assert.deepEqual(diffSnapshots(before_, snapshot(root)), [], dir);
    assert.deepEqual(diffSnapshots(outsideBefore, snapshot(outside)), [], dir);
  }
});

test("a managed directory another user owns or may write is refused (exit 6) with the fix; the --root directory itself is not checked", async () => {
  // A 0777 var/lib/kubelet/pki owned by nobody let nobody repoint kubelet-client-current.pem.
  const root = await joinedRoot();
  const pki = join(root, PKI);
  chownSync(pki, NOBODY, NOBODY);
  chmodSync(pki, 0o777);
  await expectFailure(
    ["renew", "--root", root, "--force"],
    6,
    new RegExp(
      `refusing to write under ${pki}: it is owned by uid 65534, not root and is writable by group or others \\(mode 0777\\); fix with: chown root:root ${pki} && chmod go-w ${pki}`,
    ),
    root,
  );
  chownSync(pki, 0, 0);
  await expectFailure(
    ["renew", "--root", root, "--force"],
    6,
    new RegExp(`refusing to write under ${pki}: it is writable by group or others \\(mode 0777\\)`),
    root,
  );
  chmodSync(pki, 0o755);
  // One between the root and a managed directory (var/lib), group-writable: refused too.
  chmodSync(join(root, "var/lib"), 0o775);
  await expectFailure(
    [...joinArgs(root), "--force"],
    6,
    new RegExp(
      `refusing to write under ${root}/var/lib: it is writable by group or others \\(mode 0775\\)`,
    ),
    root,
  );
  chmodSync(join(root, "var/lib"), 0o755);
  // A directory node-join does not write in is none of its business.
  mkdirSync(join(root, "srv"), { mode: 0o777 });
  chownSync(join(root, "srv"), NOBODY, NOBODY);
  // The root is the operator's choice (mkdtemp's 0700 here, an installer's /target).
  chmodSync(root, 0o777);
  const ok = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(ok.code, 0, ok.stderr);
  chmodSync(root, 0o700);
});

// ---- 9: the lock -------------------------------------------------------------------------------

const bootId = () => readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
const startTicks = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
};

test("a lock naming a pid that another process now has, or written before the last reboot, is taken over; a live owner is respected", async () => {
  const root = freshRoot();
  mkdirSync(join(root, "var/lib/node-join"), { recursive: true });
  const lock = join(root, LOCK);
  // pid 1 is alive in every pid namespace but did not write these: another start time, another
  // boot, or (a lock holding only the pid, as older node-join wrote it) written before it started.
  const sleeper = spawn("sleep", ["60"]);
  try {
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))![1]);
    const stale: [string, () => void][] = [
      [`1 ${Number(startTicks(1)) + 7} ${bootId()}\n`, () => undefined],
      [
        `${sleeper.pid} ${startTicks(sleeper.pid!)} ${bootId().replace(/^./, (c) => (c === "0" ? "1" : "0"))}\n`,
        () => undefined,
      ],
      ["1\n", () => utimesSync(lock, btime - 86400, btime - 86400)],
    ];
    for (const [content, age] of stale) {
      writeFileSync(lock, content);
      age();
      const r = await runCli([...joinArgs(root), "--force"]);
      assert.equal(r.code, 0, `${JSON.stringify(content)}: ${r.stderr}`);
      assert.ok(!existsSync(lock), "released");
    }
    writeFileSync(lock, `${sleeper.pid} ${startTicks(sleeper.pid!)} ${bootId()}\n`);
    await expectFailure(
      [...joinArgs(root), "--force"],
      7,
      new RegExp(`another node-join \\(pid ${sleeper.pid}\\) holds the lock ${lock}`),
      root,
    );
  } finally {
    sleeper.kill();
  }
});

test("a FIFO or a symbolic link at the lock path is refused at once (exit 6), not waited on or followed", async () => {
  const root = await joinedRoot();
  const lock = join(root, LOCK);
  assert.equal(spawnSync("mkfifo", [lock]).status, 0, "mkfifo");
  // The snapshot helper reads every file, so it cannot look at a FIFO: compare the rest.
  const etc = snapshot(join(root, "etc"));
  const kubelet = snapshot(join(root, "var/lib/kubelet"));
  const t0 = Date.now();
  const r = await runCli([...joinArgs(root), "--force", "--json"], { timeoutMs: 30_000 });
  assert.equal(r.code, 6, `exit ${r.code} after ${Date.now() - t0} ms: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(`the lock ${lock} is a FIFO, not a lock file`));
  assert.ok(lstatSync(lock).isFIFO(), "left for the operator");
  assert.deepEqual(diffSnapshots(etc, snapshot(join(root, "etc"))), []);
  assert.deepEqual(diffSnapshots(kubelet, snapshot(join(root, "var/lib/kubelet"))), []);
  rmSync(lock);

  const target = join(root, "var/lib/node-join/not-a-lock");
  writeFileSync(target, "1\n");
  symlinkSync(target, lock);
  await expectFailure(
    [...joinArgs(root), "--force"],
    6,
    new RegExp(`the lock ${lock} is a symbolic link, not a lock file`),
    root,
  );
  assert.equal(readFileSync(target, "utf8"), "1\n");
});

// ---- 10: a directory at a target ---------------------------------------------------------------

test("a directory where kubelet.conf belongs fails join --force whole (exit 6): the set stays old, no journal, the next run works", async () => {
  const root = await joinedRoot();
  const conf = join(root, "etc/kubernetes/kubelet.conf");
  rmSync(conf);
  mkdirSync(conf);
  writeFileSync(join(conf, "placeholder"), "x\n");
  await expectFailure(
    [...joinArgs(root), "--force"],
    6,
    new RegExp(`cannot install ${conf}: it is a directory, not a file`),
    root,
  );
  assert.ok(!existsSync(join(root, JOURNAL)), "no journal left behind");
  rmSync(conf, { recursive: true });
  const again = await runCli([...joinArgs(root), "--force"]);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(lstatSync(conf).isFile());
});

// ---- 12: who may steer root --------------------------------------------------------------------

test("a config another user owns or may write is refused (exit 2) with the fix, before its hooks can run", async () => {
  const root = await joinedRoot();
  const config = join(root, "etc/node-join/config.yaml");
  const marker = join(root, "hook-ran");
  // What another user would add: a hook that runs as root.
  writeFileSync(
    config,
    `${readFileSync(config, "utf8")}hooks:\n  postRenew:\n    - ["touch", "${marker}"]\n`,
  );
  chmodSync(config, 0o666);
  const renew = ["renew", "--root", root, "--force"];
  await expectFailure(
    renew,
    2,
    new RegExp(
      `config file ${config} is writable by group or others \\(mode 0666\\); fix with: chmod go-w ${config}`,
    ),
    root,
  );
  chmodSync(config, 0o644);
  chownSync(config, NOBODY, NOBODY);
  await expectFailure(
    renew,
    2,
    new RegExp(
      `config file ${config} is owned by uid 65534, not root; fix with: chown root:root ${config}`,
    ),
    root,
  );
  assert.ok(!existsSync(marker), "no hook ran");
  // --config names the file to check.
  const other = join(tempRoot("nj-hostile-config-"), "config.yaml");
  writeFileSync(other, "renew:\n  before: 30d\n", { mode: 0o664 });
  chmodSync(other, 0o664);
  await expectFailure(
    ["renew", "--root", root, "--config", other],
    2,
    new RegExp(`config file ${other} is writable by group or others \\(mode 0664\\)`),
    root,
  );
});

test("the renewal unit's environment file another user owns or may write is refused by renew, join and trust (exit 2) and flagged by status", async () => {
  const root = await joinedRoot();
  const envFile = join(root, "etc/node-join/environment");
  // What another user would write: systemd reads it as root, and its NODE_JOIN_* variables
  // override the config, the CA's URL and pins included.
  writeFileSync(envFile, `NODE_JOIN_CA_URL=http://127.0.0.1:1\n`);
  const commands = [
    ["renew", "--root", root, "--force"],
    [...joinArgs(root), "--force"],
    ["trust", "list", "--root", root],
  ];
  const cases: [() => void, string][] = [
    [
      () => chmodSync(envFile, 0o666),
      `environment file ${envFile} is writable by group or others \\(mode 0666\\); fix with: chmod 600 ${envFile}`,
    ],
    [
      () => {
        chmodSync(envFile, 0o600);
        chownSync(envFile, NOBODY, NOBODY);
      },
      `environment file ${envFile} is owned by uid 65534, not root; fix with: chown root:root ${envFile}`,
    ],
  ];
  for (const [make, message] of cases) {
    make();
    for (const argv of commands) {
      const n = await caRequestsDuring(() => expectFailure(argv, 2, new RegExp(message), root));
      assert.equal(n, 0, `${argv[0]}: no CA contacted`);
    }
    const status = await runCli(["status", "--root", root]);
    assert.equal(status.code, 8, status.stderr);
    assert.match(status.stdout, new RegExp(`^needs attention:\n(.*\n)*  ${message}$`, "m"));
    const j = json<{
      needsAttention: boolean;
      environmentFile?: { file: string; problem: string };
    }>(await runCli(["status", "--root", root, "--json"]));
    assert.equal(j.needsAttention, true);
    assert.equal(j.environmentFile?.file, envFile);
    assert.match(j.environmentFile?.problem ?? "", new RegExp(message));
  }
  // root's own, 0600 (or 0644: writable by root alone): read, the run goes on.
  chownSync(envFile, 0, 0);
  writeFileSync(envFile, "https_proxy=http://proxy.lab:3128\n");
  for (const mode of [0o600, 0o644]) {
    chmodSync(envFile, mode);
    const ok = await runCli(["trust", "list", "--root", root]);
    assert.equal(ok.code, 0, ok.stderr);
    const st = await runCli(["status", "--root", root, "--json"]);
    assert.equal(json<{ environmentFile?: unknown }>(st).environmentFile, undefined);
  }
});

test("a 0600 CA auth key owned by another user is refused (exit 2) before any CSR is sent", async () => {
  const root = freshRoot();
  chownSync(keyFile(root), NOBODY, NOBODY);
  const signs = proxy.requests.filter((q) => q.path.endsWith("sign")).length;
  await expectFailure(
    joinArgs(root),
    2,
    new RegExp(
      `CA auth key file ${keyFile(root)} is owned by uid 65534, not root; fix with: chown root:root ${keyFile(root)}`,
    ),
    root,
  );
  assert.equal(proxy.requests.filter((q) => q.path.endsWith("sign")).length, signs);
  chownSync(keyFile(root), 0, 0);
  assert.equal((await runCli(joinArgs(root))).code, 0);
});

test("a step-ca password or token file owned by another user is refused (exit 2)", async () => {
  const root = tempRoot("nj-hostile-step-");
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  const workers = step.provisioners.find((p) => p.name === "workers")!;
  const pw = join(root, "etc/node-join/workers.password");
  writeFileSync(pw, workers.password, { mode: 0o600 });
  chownSync(pw, NOBODY, NOBODY);
  const args = stepWorkerJoin(root, step, {
    "ca-provisioner": "workers",
    "ca-password-file": pw,
  });
  await expectFailure(
    args,
    2,
    new RegExp(`step-ca provisioner password file ${pw} is owned by uid 65534, not root`),
    root,
  );
  const tokens = join(root, "etc/node-join/tokens");
  writeFileSync(tokens, "not-even-a-token\n", { mode: 0o600 });
  chownSync(tokens, NOBODY, NOBODY);
  await expectFailure(
    stepWorkerJoin(root, step, { "ca-token-file": tokens }),
    2,
    new RegExp(`step-ca token file ${tokens} is owned by uid 65534, not root`),
    root,
  );
  chownSync(pw, 0, 0);
  const ok = await runCli(args);
  assert.equal(ok.code, 0, ok.stderr);
});

test("a --sa-key-file that group or others may read, or another user owns, is refused (exit 2), not copied", async () => {
  const root = tempRoot("nj-hostile-cp-");
  installControlPlaneSecrets(root, { kubernetes: ca, frontProxy: ca, etcd: ca }, saDir);
  const sa = join(root, "etc/node-join/sa.key");
  const args = cfsslControlPlaneJoin(
    root,
    "cp1",
    "127.0.0.11",
    { kubernetes: ca, frontProxy: ca, etcd: ca },
    { "sa-key-file": sa, "sa-pub-file": join(root, "etc/node-join/sa.pub") },
  );
  chmodSync(sa, 0o644);
  await expectFailure(
    args,
    2,
    new RegExp(
      `service-account key ${sa} is readable by group or others \\(mode 0644\\); fix with: chmod 600 ${sa}`,
    ),
    root,
  );
  chmodSync(sa, 0o600);
  chownSync(sa, NOBODY, NOBODY);
  await expectFailure(
    args,
    2,
    new RegExp(`service-account key ${sa} is owned by uid 65534, not root`),
    root,
  );
  assert.ok(!existsSync(join(root, "etc/kubernetes/pki/sa.key")), "not copied");
});

// ---- 14: --root "" -----------------------------------------------------------------------------

test('--root "" is refused (exit 2) and writes nothing into the working directory', async () => {
  const cwd = tempRoot("nj-hostile-cwd-");
  ca.installAuthKey(cwd);
  const before_ = snapshot(cwd);
  const [cmd, ...pre] = binary();
  for (const args of [
    cfsslWorkerJoin("", ca, { "ca-auth-key-file": join(cwd, "etc/node-join/ca-auth.key") }),
    ["renew", "--root", ""],
    ["status", "--root", ""],
    ["restart-static-pods", "--root", "", "--wait", "0s", "etcd"],
    ["timer", "install", "--root", "", "--scheduler", "cron"],
  ]) {
    const r = spawnSync(cmd!, [...pre, ...args], {
      cwd,
      encoding: "utf8",
      timeout: 60_000,
      env: { PATH: process.env.PATH },
    });
    assert.equal(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /--root "": an empty path names no directory/, args[0]);
  }
  assert.deepEqual(diffSnapshots(before_, snapshot(cwd)), []);
  assert.deepEqual(readdirSync(cwd).sort(), ["etc"]);
});
