// The per-root lock (agent/store/lock.ts), in process on temp roots: one node-join at a time, a
// lock left by a killed run does not block the next run forever, and a run only ever removes its
// own.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { LockedError } from "../../agent/common/errors.js";
import { layout } from "../../agent/store/layout.js";
import { acquireLock } from "../../agent/store/lock.js";
import { tempRoot } from "../helpers/fs.js";

const made: string[] = [];
after(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});
function lockFile(): string {
  const root = tempRoot("nj-lock-");
  made.push(root);
  return layout(root).lockFile;
}

/** A lock file as another process would have left it. */
function plant(file: string, content: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** pid_max itself is never a pid: the kernel hands out pids below it. */
function deadPid(): number {
  const pid = Number(readFileSync("/proc/sys/kernel/pid_max", "utf8").trim());
  assert.throws(() => process.kill(pid, 0), { code: "ESRCH" }, `pid ${pid} must not be alive`);
  return pid;
}

const ownPid = `${process.pid}\n`;

test("acquire writes the pid; release removes the lock and the directories acquiring created", () => {
  const file = lockFile();
  const root = dirname(dirname(dirname(dirname(file))));
  assert.deepEqual(readdirSync(root), [], "var/lib/node-join does not exist yet");
  const lock = acquireLock(file);
  assert.equal(readFileSync(file, "utf8"), ownPid);
  assert.deepEqual(readdirSync(dirname(file)), ["lock"], "no temp file left beside the lock");
  lock.release();
  assert.ok(!existsSync(file));
  assert.deepEqual(
    readdirSync(root),
    [],
    "var/, var/lib/ and var/lib/node-join/ were removed again",
  );
});

test("release keeps directories that existed before, or that hold something else by then", () => {
  const file = lockFile();
  mkdirSync(dirname(file), { recursive: true });
  acquireLock(file).release();
  assert.ok(existsSync(dirname(file)), "var/lib/node-join existed before the lock");

  const other = lockFile();
  const lock = acquireLock(other);
  writeFileSync(join(dirname(other), "state.json"), "{}\n");
  lock.release();
  assert.ok(!existsSync(other));
  assert.ok(
    existsSync(join(dirname(other), "state.json")),
    "a directory with content is not removed",
  );
});

test("a second acquire while the lock is held throws LockedError (exit 7) naming the pid and the file", () => {
  const file = lockFile();
  const lock = acquireLock(file);
  assert.throws(
    () => acquireLock(file),
    (err: unknown) => {
      assert.ok(err instanceof LockedError, String(err));
      assert.equal(err.exitCode, 7);
      assert.ok(err.message.includes(`pid ${process.pid}`), err.message);
      assert.ok(err.message.includes(file), err.message);
      return true;
    },
  );
  assert.equal(readFileSync(file, "utf8"), ownPid, "the holder's lock is untouched");
  assert.deepEqual(
    readdirSync(dirname(file)),
    ["lock"],
    "the failed attempt left nothing beside it",
  );
  lock.release();
  assert.ok(!existsSync(file));
});

test("a lock held by another live process is not taken over", () => {
  const file = lockFile();
  // pid 1 exists in every pid namespace, so it stands for a live owner here.
  plant(file, "1\n");
  assert.throws(
    () => acquireLock(file),
    (err: unknown) =>
      err instanceof LockedError && err.exitCode === 7 && /\(pid 1\)/.test(err.message),
  );
  assert.equal(readFileSync(file, "utf8"), "1\n");
});

test("a lock whose pid is dead is taken over", () => {
  const file = lockFile();
  plant(file, `${deadPid()}\n`);
  const lock = acquireLock(file);
  assert.equal(readFileSync(file, "utf8"), ownPid);
  assert.deepEqual(readdirSync(dirname(file)), ["lock"], "the stale lock moved aside is gone");
  lock.release();
  assert.ok(!existsSync(file));
});

test("a lock file without a pid (garbage, empty, 0 or -1) is taken over", () => {
  // 0 and -1 are not pids: kill(0 or -1, 0) succeeds (own group, every process) and would make such
  // a lock look held forever.
  for (const content of ["not a pid\n", "", "0\n", "-1\n"]) {
    const file = lockFile();
    plant(file, content);
    const lock = acquireLock(file);
    assert.equal(readFileSync(file, "utf8"), ownPid, JSON.stringify(content));
    lock.release();
    assert.ok(!existsSync(file), JSON.stringify(content));
  }
});

test("release by a process that no longer owns the lock leaves the new owner's lock in place", () => {
  const file = lockFile();
  const lock = acquireLock(file);
  // Another run took the lock over in the meantime (it judged this one dead).
  writeFileSync(file, "1\n");
  lock.release();
  assert.equal(readFileSync(file, "utf8"), "1\n");
});
