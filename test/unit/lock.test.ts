// The per-root lock (agent/store/lock.ts), in process on temp roots: one node-join at a time, a
// lock left by a killed run does not block the next run forever (not even when its pid was handed
// to another process, or the host rebooted since), a run only ever removes its own, and what is at
// the lock path is read without following a link or blocking on a FIFO.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { LocalIoError, LockedError } from "../../agent/common/errors.js";
import { layout } from "../../agent/store/layout.js";
import { acquireLock } from "../../agent/store/lock.js";
import { runWithDeadline } from "../helpers/deadline.js";
import { scratchRoots } from "../helpers/fixture.js";

const { newRoot } = scratchRoots("nj-lock-");
const lockFile = (): string => layout(newRoot()).lockFile;

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

/** Field 22 of /proc/<pid>/stat, read here independently of the code under test. */
function startTicks(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}
const BOOT = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();

/** What this process's lock holds: pid, start time, boot id. */
const ownPid = `${process.pid} ${startTicks(process.pid)} ${BOOT}\n`;

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

const takenOver = (file: string, content: string, why: string): void => {
  plant(file, content);
  const lock = acquireLock(file);
  assert.equal(readFileSync(file, "utf8"), ownPid, why);
  assert.deepEqual(readdirSync(dirname(file)), ["lock"], `${why}: nothing left beside the lock`);
  lock.release();
  assert.ok(!existsSync(file), why);
};

const isLocked = (pid: number) => (err: unknown) =>
  err instanceof LockedError && err.exitCode === 7 && err.message.includes(`(pid ${pid})`);

test("a lock naming a live pid is taken over when that pid now belongs to another process", () => {
  // This process is alive, but it did not start at tick 1: the pid was reused since the lock was
  // written. Trusting the pid alone blocked every run (exit 7) until someone removed the lock.
  takenOver(lockFile(), `${process.pid} 1 ${BOOT}\n`, "pid reused");
  takenOver(lockFile(), `1 ${Number(startTicks(1)) + 1} ${BOOT}\n`, "pid 1, another start");
});

test("a lock written before the last reboot is taken over, whatever its pid is now", () => {
  const otherBoot = BOOT.replace(/^./, (c) => (c === "0" ? "1" : "0"));
  takenOver(lockFile(), `1 ${startTicks(1)} ${otherBoot}\n`, "an earlier boot");
});

test("a lock naming a live process with its start time and this boot is held (exit 7)", () => {
  const file = lockFile();
  const line = `1 ${startTicks(1)} ${BOOT}\n`;
  plant(file, line);
  assert.throws(() => acquireLock(file), isLocked(1));
  assert.equal(readFileSync(file, "utf8"), line);
});

test("an old lock holding only a pid: held while the process may have written it, stale once it started after the lock", () => {
  // Written now, naming pid 1 (started at boot, before the lock): its owner may be alive.
  const held = lockFile();
  plant(held, "1\n");
  assert.throws(() => acquireLock(held), isLocked(1));
  // Written a day before pid 1 started (so before this boot): pid 1 is not the process that
  // wrote it.
  const btime = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))![1]);
  const old = lockFile();
  plant(old, "1\n");
  utimesSync(old, btime - 86400, btime - 86400);
  const lock = acquireLock(old);
  assert.equal(readFileSync(old, "utf8"), ownPid);
  lock.release();
});

test("a symbolic link at the lock path is refused (exit 6), never followed", () => {
  const file = lockFile();
  mkdirSync(dirname(file), { recursive: true });
  const victim = join(dirname(file), "victim");
  writeFileSync(victim, "1\n");
  symlinkSync(victim, file);
  assert.throws(
    () => acquireLock(file),
    (err: unknown) =>
      err instanceof LocalIoError &&
      err.exitCode === 6 &&
      err.message.includes(file) &&
      /symbolic link/.test(err.message),
  );
  assert.ok(lstatSync(file).isSymbolicLink(), "left for the operator");
  assert.equal(readFileSync(victim, "utf8"), "1\n");
});

test("a FIFO at the lock path is refused (exit 6) at once instead of hanging the run", async () => {
  const file = lockFile();
  mkdirSync(dirname(file), { recursive: true });
  assert.equal(spawnSync("mkfifo", [file]).status, 0, "mkfifo");
  // In a child process with a deadline: reading a FIFO without O_NONBLOCK blocks until a writer
  // comes, and a blocked synchronous read would hang this test runner too.
  const r = await runWithDeadline(
    `import { acquireLock } from ${JSON.stringify(new URL("../../agent/store/lock.ts", import.meta.url).pathname)};`,
    `try { acquireLock(${JSON.stringify(file)}); console.log("acquired"); }
    catch (err) { console.log(err.exitCode, err.message); }`,
  );
  assert.equal(r.signal, null, "acquireLock returned instead of blocking on the FIFO");
  assert.match(r.stdout, /^6 the lock .*lock is a FIFO, not a lock file/, r.stderr);
  assert.ok(lstatSync(file).isFIFO(), "left for the operator");
});
