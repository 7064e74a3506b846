// One node-join at a time per root: /var/lib/node-join/lock holds the owner's pid. A lock whose
// pid is gone (the owner was killed) is taken over.
import { linkSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { ensureDir, removeCreatedDirs, removeIfExists, writeNew } from "./fsio.js";
import { ioError, LocalIoError, LockedError } from "../common/errors.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface Lock {
  /** Removes the lock, and the directories taking it created when they are still empty. */
  release(): void;
}

export function acquireLock(file: string): Lock {
  const created = ensureDir(dirname(file), 0o755);
  for (let attempt = 0; attempt < 3; attempt++) {
    // The pid is written before the lock appears (link is atomic), so a lock is never seen empty.
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      removeIfExists(tmp);
      writeNew(tmp, `${process.pid}\n`, 0o644);
      linkSync(tmp, file);
      unlinkSync(tmp);
      return {
        release: () => {
          if (readPid(file) === process.pid) unlinkSync(file);
          removeCreatedDirs(created);
        },
      };
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // not created
      }
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        removeCreatedDirs(created);
        throw err instanceof LocalIoError ? err : ioError("create lock", file, err);
      }
    }
    const owner = readPid(file);
    if (owner !== undefined && alive(owner)) {
      removeCreatedDirs(created);
      throw new LockedError(`another node-join (pid ${owner}) holds the lock ${file}`);
    }
    // Stale (owner gone): move it aside atomically so that only
    // one contender removes it, then re-check that what was moved really was the stale one.
    const aside = `${file}.stale-${process.pid}`;
    try {
      renameSync(file, aside);
    } catch {
      continue;
    }
    const moved = readPid(aside);
    if (moved !== owner && moved !== undefined && alive(moved)) {
      try {
        renameSync(aside, file);
      } catch {
        // it will be seen as stale by nobody: its owner still releases by pid check
      }
      throw new LockedError(`another node-join (pid ${moved}) holds the lock ${file}`);
    }
    try {
      unlinkSync(aside);
    } catch {
      // gone already
    }
  }
  throw new LockedError(`could not take the lock ${file}`);
}
