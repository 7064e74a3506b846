// sshd's StrictModes for node-join (agent/store/strict-modes.ts), in process on temp roots: the
// directories it writes in and the config and secret files it reads must be root's alone. The
// rules that apply only to a run as root are driven with the owner they require, so that they are
// checked whoever runs the fast tier: the mode rules with this user playing root (PLAYS_ROOT: uid 0
// as root, else this user's uid, who owns what the test makes); "another user" with root required
// (0): run as root the file is chowned to nobody (65534), run as someone else it already is not
// root's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LocalIoError, UsageError } from "../../agent/common/errors.js";
import { layout } from "../../agent/store/layout.js";
import {
  assertSafeDirs,
  checkEnvironmentFile,
  readTrustedFile,
} from "../../agent/store/strict-modes.js";
import { scratchRoots } from "../helpers/fixture.js";

const { newRoot } = scratchRoots("nj-strict-");

const NOBODY = 65534;
const asRootHere = process.geteuid?.() === 0;
const PLAYS_ROOT = asRootHere ? 0 : process.geteuid!();

/** Gives `path` to a user that is not root (already so when the tests do not run as root). */
function giveAway(path: string): void {
  if (asRootHere) chownSync(path, NOBODY, NOBODY);
}

const refusedDir = (dir: string, why: RegExp) => (err: unknown) => {
  assert.ok(err instanceof LocalIoError, `a LocalIoError, not ${String(err)}`);
  assert.equal(err.exitCode, 6);
  assert.ok(err.message.startsWith(`refusing to write under ${dir}: it `), err.message);
  assert.match(err.message, why);
  return true;
};

test("a managed directory that group or others may write is refused, with the chmod that fixes it", () => {
  const root = newRoot();
  const pki = layout(root).kubeletPkiDir;
  mkdirSync(pki, { recursive: true });
  if (asRootHere) chownSync(pki, 0, 0);
  for (const mode of [0o777, 0o775, 0o1777, 0o757]) {
    chmodSync(pki, mode);
    assert.throws(
      () => assertSafeDirs(root, pki, PLAYS_ROOT),
      refusedDir(
        pki,
        new RegExp(
          `writable by group or others \\(mode 0?${mode.toString(8)}\\).*chmod go-w ${pki}`,
        ),
      ),
    );
  }
  chmodSync(pki, 0o755);
  assertSafeDirs(root, pki, PLAYS_ROOT);
});

test("a directory between the root and a managed one is checked too; the root itself and above it are not", () => {
  const root = newRoot();
  const l = layout(root);
  mkdirSync(l.kubeletPkiDir, { recursive: true });
  chmodSync(join(root, "var/lib"), 0o777);
  assert.throws(
    () => assertSafeDirs(root, l.kubeletPkiDir, PLAYS_ROOT),
    refusedDir(join(root, "var/lib"), /writable/),
  );
  chmodSync(join(root, "var/lib"), 0o755);
  // The root is the operator's choice (a test's temporary directory, an installer's /target).
  chmodSync(root, 0o777);
  assertSafeDirs(root, l.kubeletPkiDir, PLAYS_ROOT);
  chmodSync(root, 0o700);
});

test("a managed directory owned by another user is refused, with the chown that fixes it", () => {
  const root = newRoot();
  const dir = layout(root).kubeletPkiDir;
  mkdirSync(dir, { recursive: true });
  giveAway(dir);
  // Run as another user, every directory the test made is not root's: the first one is refused.
  const first = asRootHere ? dir : join(root, "var");
  assert.throws(
    () => assertSafeDirs(root, dir, 0),
    refusedDir(
      first,
      new RegExp(`owned by uid \\d+, not root; fix with: chown root:root ${first}`),
    ),
  );
});

test("not running as root: ownership and modes are not checked, a symlinked directory still is", () => {
  const root = newRoot();
  const dir = layout(root).kubeletPkiDir;
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  giveAway(dir);
  assertSafeDirs(root, dir, false);
  const manifests = layout(root).manifestsDir;
  mkdirSync(join(root, "elsewhere"));
  mkdirSync(layout(root).kubernetesDir, { recursive: true });
  symlinkSync(join(root, "elsewhere"), manifests);
  assert.throws(
    () => assertSafeDirs(root, manifests, false),
    refusedDir(manifests, /symbolic link/),
  );
});

function file(root: string, name: string, mode: number): string {
  const p = join(root, name);
  writeFileSync(p, "content\n");
  chmodSync(p, mode);
  if (asRootHere) chownSync(p, 0, 0);
  return p;
}

const refusedFile = (what: string, path: string, why: RegExp) => (err: unknown) => {
  assert.ok(err instanceof UsageError, `a UsageError, not ${String(err)}`);
  assert.equal(err.exitCode, 2);
  assert.ok(err.message.startsWith(`${what} ${path} `), err.message);
  assert.match(err.message, why);
  return true;
};

/** `path`, given to another user, is refused when root must own it; returns `path`. */
function refusedForeign(
  path: string,
  what: string,
  kind: Parameters<typeof readTrustedFile>[2],
  why: (path: string) => RegExp,
): string {
  giveAway(path);
  assert.throws(
    () => readTrustedFile(path, what, kind, { owner: 0 }),
    refusedFile(what, path, why(path)),
  );
  return path;
}

test("as root, a config file others may write or another user owns is refused (exit 2); 0644 root-owned is read", () => {
  const root = newRoot();
  const ok = file(root, "config.yaml", 0o644);
  assert.equal(
    readTrustedFile(ok, "config file", "config", { owner: PLAYS_ROOT }).toString(),
    "content\n",
  );
  for (const mode of [0o664, 0o646, 0o666]) {
    const p = file(root, `config-${mode.toString(8)}.yaml`, mode);
    assert.throws(
      () => readTrustedFile(p, "config file", "config", { owner: PLAYS_ROOT }),
      refusedFile(
        "config file",
        p,
        new RegExp(`writable by group or others .*fix with: chmod go-w ${p}`),
      ),
    );
  }
  refusedForeign(
    file(root, "foreign.yaml", 0o644),
    "config file",
    "config",
    (p) => new RegExp(`owned by uid \\d+, not root; fix with: chown root:root ${p}`),
  );
  // Not as root: a developer's umask 002 config is theirs to write.
  assert.equal(
    readTrustedFile(file(root, "dev.yaml", 0o664), "config file", "config", {
      owner: false,
    }).toString(),
    "content\n",
  );
});

test("a secret file others may read or write is refused whoever runs; as root one another user owns is too", () => {
  const root = newRoot();
  for (const [mode, who] of [
    [0o644, "readable"],
    [0o640, "readable"],
    [0o604, "readable"],
    [0o620, "accessible"],
    [0o610, "accessible"],
  ] as const) {
    const p = file(root, `key-${mode.toString(8)}`, mode);
    for (const owner of [PLAYS_ROOT, false] as const)
      assert.throws(
        () => readTrustedFile(p, "CA auth key file", "secret", { owner }),
        refusedFile(
          "CA auth key file",
          p,
          new RegExp(
            `is ${who} by group or others \\(mode 0${mode.toString(8)}\\); fix with: chmod 600 ${p}`,
          ),
        ),
      );
  }
  const foreign = refusedForeign(
    file(root, "foreign.key", 0o600),
    "CA auth key file",
    "secret",
    () => /owned by uid \d+, not root; fix with: chown root:root/,
  );
  // Both wrong: one line, both fixes.
  chmodSync(foreign, 0o644);
  assert.throws(
    () => readTrustedFile(foreign, "CA auth key file", "secret", { owner: 0 }),
    /owned by uid \d+, not root and is readable by group or others \(mode 0644\); fix with: chown root:root \S+ && chmod 600 \S+$/,
  );
});

test("a FIFO or a directory given as a config or secret file is refused at once, not read", () => {
  const root = newRoot();
  const dir = join(root, "dir");
  mkdirSync(dir);
  assert.throws(
    () => readTrustedFile(dir, "config file", "config"),
    refusedFile("config file", dir, /not a regular file/),
  );
  const fifo = join(root, "fifo");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo");
  assert.throws(
    () => readTrustedFile(fifo, "CA auth key file", "secret"),
    refusedFile("CA auth key file", fifo, /not a regular file/),
  );
  const link = join(root, "link");
  symlinkSync(file(root, "real", 0o600), link);
  assert.throws(
    () => readTrustedFile(link, "service-account key", "secret", { noFollow: true }),
    refusedFile("service-account key", link, /symbolic link/),
  );
});

test("the renewal unit's environment file: none is fine; as root, one others may write or another user owns is refused (exit 2) with chmod 600 / chown root:root", () => {
  const root = newRoot();
  const envFile = layout(root).environmentFile;
  assert.equal(envFile, join(root, "etc/node-join/environment"), "under the root");
  checkEnvironmentFile(envFile, PLAYS_ROOT); // none there: systemd skips it too ("-")
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  for (const mode of [0o600, 0o644]) {
    writeFileSync(envFile, "https_proxy=http://proxy.lab:3128\n");
    chmodSync(envFile, mode);
    checkEnvironmentFile(envFile, PLAYS_ROOT);
  }
  for (const mode of [0o620, 0o602, 0o666]) {
    chmodSync(envFile, mode);
    assert.throws(
      () => checkEnvironmentFile(envFile, PLAYS_ROOT),
      refusedFile(
        "environment file",
        envFile,
        new RegExp(`writable by group or others .*; fix with: chmod 600 ${envFile}$`),
      ),
    );
  }
  chmodSync(envFile, 0o600);
  giveAway(envFile);
  assert.throws(
    () => checkEnvironmentFile(envFile, 0),
    refusedFile(
      "environment file",
      envFile,
      new RegExp(`owned by uid \\d+, not root; fix with: chown root:root ${envFile}$`),
    ),
  );
  // Not as root: the file steers nobody else's runs.
  chmodSync(envFile, 0o666);
  checkEnvironmentFile(envFile, false);
  // Not a file: refused whoever runs.
  rmSync(envFile);
  mkdirSync(envFile);
  assert.throws(
    () => checkEnvironmentFile(envFile, false),
    refusedFile("environment file", envFile, /is not a regular file \(it is a directory\)/),
  );
});
