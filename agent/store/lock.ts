// One node-join at a time per root: /var/lib/node-join/lock names its owner as "<pid> <start>
// <boot>": the pid, the process's start time (field 22 of /proc/<pid>/stat, clock ticks since
// boot, see proc(5)) and the boot id (/proc/sys/kernel/random/boot_id, new at every boot). A pid
// alone is not an owner: after a reboot, or once the kernel hands the pid to another process, a
// live pid says nothing about the run that wrote the lock, and trusting it blocked every renewal.
// A lock whose owner is gone is taken over. Older node-join wrote the pid alone; such a lock is
// still read (and an older node-join reads the first number of a new one).
import { linkSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { ensureDir, removeCreatedDirs, removeIfExists, writeNew } from "./fsio.js";
import { readUntrusted } from "./safe-read.js";
import { ioError, LocalIoError, LockedError } from "../common/errors.js";

/**
 * USER_HZ, the unit of /proc/<pid>/stat's start time: 100 on every architecture Linux runs Node
 * on (include/asm-generic/param.h; proc(5) "sysconf(_SC_CLK_TCK)").
 */
const USER_HZ = 100;

/**
 * How much later than the lock's mtime a process must have started to be judged a stranger that
 * reuses the pid of an old-format lock: /proc/stat's btime has whole seconds.
 */
const START_SLACK_MS = 2000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined; // no procfs (a minimal chroot): fall back to what can be known
  }
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks after boot. */
export function processStartTicks(pid: number): string | undefined {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // Field 2 is the command name in parentheses and may itself hold spaces and parentheses: the
  // fields after it start after the last ")". Field 3 is the first of them, so 22 is index 19.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = rest[19];
  return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : undefined;
}

export function bootId(): string | undefined {
  const id = readProc("/proc/sys/kernel/random/boot_id")?.trim();
  return id && /^[0-9a-f-]+$/.test(id) ? id : undefined;
}

/** When the process started, in wall-clock milliseconds (boot time from /proc/stat + ticks). */
function processStartedAtMs(pid: number): number | undefined {
  const ticks = processStartTicks(pid);
  const btime = /^btime (\d+)$/m.exec(readProc("/proc/stat") ?? "")?.[1];
  if (ticks === undefined || btime === undefined) return undefined;
  return Number(btime) * 1000 + (Number(ticks) * 1000) / USER_HZ;
}

interface Owner {
  pid: number;
  start?: string;
  boot?: string;
}

/** This process as its lock names it: "<pid> <start ticks> <boot id>", or the pid without /proc. */
function ownLine(): string {
  const start = processStartTicks(process.pid);
  const boot = bootId();
  return start !== undefined && boot !== undefined
    ? `${process.pid} ${start} ${boot}\n`
    : `${process.pid}\n`;
}

function parseOwner(text: string): Owner | undefined {
  const [pidText, start, boot] = text.trim().split(/\s+/);
  if (pidText === undefined || !/^\d+$/.test(pidText)) return undefined;
  const pid = Number(pidText);
  // 0 and -1 are not pids: kill(0 or -1, 0) succeeds (own group, every process).
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  if (start !== undefined && /^\d+$/.test(start) && boot !== undefined) return { pid, start, boot };
  return { pid };
}

/** What is at the lock path, read without following a link or blocking on a FIFO. */
type LockFile =
  | { kind: "missing" }
  | { kind: "foreign"; what: string }
  | { kind: "lock"; text: string; owner?: Owner; mtimeMs: number };

function readLockFile(file: string): LockFile {
  // A lock holds a line; anything larger was not written by node-join.
  const r = readUntrusted(file, { maxBytes: 4096 });
  switch (r.kind) {
    case "missing":
      return r;
    case "symlink":
      return { kind: "foreign", what: "a symbolic link" };
    case "special":
      return { kind: "foreign", what: r.what };
    case "too-large":
      return { kind: "foreign", what: `a file of ${r.size} bytes` };
    case "file": {
      const text = r.content.toString("utf8");
      const owner = parseOwner(text);
      return { kind: "lock", text, ...(owner ? { owner } : {}), mtimeMs: r.stat.mtimeMs };
    }
  }
}

/** Whether the run that wrote the lock may still be running. */
function ownerAlive(owner: Owner, lockMtimeMs: number): boolean {
  if (!alive(owner.pid)) return false;
  if (owner.start !== undefined && owner.boot !== undefined) {
    const boot = bootId();
    if (boot !== undefined && boot !== owner.boot) return false; // written before a reboot
    const start = processStartTicks(owner.pid);
    if (start !== undefined && start !== owner.start) return false; // the pid was reused
    return true;
  }
  // An old lock (the pid alone): a process that started after the lock was written cannot be
  // the one that wrote it (a later boot, or a reused pid). The comparison is in wall-clock time,
  // which a clock step can skew; it is only the fallback for locks left by older versions.
  const started = processStartedAtMs(owner.pid);
  return started === undefined || started <= lockMtimeMs + START_SLACK_MS;
}

export interface Lock {
  /** Removes the lock, and the directories taking it created when they are still empty. */
  release(): void;
}

export function acquireLock(file: string): Lock {
  const created = ensureDir(dirname(file), 0o755);
  const mine = ownLine();
  const fail: (err: Error) => never = (err) => {
    removeCreatedDirs(created);
    throw err;
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    // The owner is written before the lock appears (link is atomic), so a lock is never seen empty.
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      removeIfExists(tmp);
      writeNew(tmp, mine, 0o644);
      linkSync(tmp, file);
      unlinkSync(tmp);
      return {
        release: () => {
          try {
            const now = readLockFile(file);
            if (now.kind === "lock" && now.text === mine) unlinkSync(file);
          } catch {
            // gone or unreadable: not this run's to remove any more
          }
          removeCreatedDirs(created);
        },
      };
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // not created
      }
      if ((err as NodeJS.ErrnoException).code !== "EEXIST")
        fail(err instanceof LocalIoError ? err : ioError("create lock", file, err));
    }
    const found = readLockFile(file);
    if (found.kind === "missing") continue; // released in the meantime
    if (found.kind === "foreign")
      fail(
        new LocalIoError(
          `the lock ${file} is ${found.what}, not a lock file: node-join never makes one; remove it and run again`,
        ),
      );
    if (found.owner && ownerAlive(found.owner, found.mtimeMs))
      fail(new LockedError(`another node-join (pid ${found.owner.pid}) holds the lock ${file}`));
    // Stale (owner gone): move it aside atomically so that only one contender removes it, then
    // re-check that what was moved really was the stale one.
    const aside = `${file}.stale-${process.pid}`;
    try {
      renameSync(file, aside);
    } catch {
      continue;
    }
    const moved = readLockFile(aside);
    if (
      moved.kind === "lock" &&
      moved.text !== found.text &&
      moved.owner &&
      ownerAlive(moved.owner, moved.mtimeMs)
    ) {
      try {
        renameSync(aside, file);
      } catch {
        // it will be seen as stale by nobody: its owner still releases by its own line
      }
      fail(new LockedError(`another node-join (pid ${moved.owner.pid}) holds the lock ${file}`));
    }
    try {
      unlinkSync(aside);
    } catch {
      // gone already
    }
  }
  return fail(new LockedError(`could not take the lock ${file}`));
}
