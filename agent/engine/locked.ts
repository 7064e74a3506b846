// The part of a run that writes, one at a time per root: the write targets are checked, the lock
// taken, what a killed run left behind finished or undone, and the lock released whatever happens.
import { restorePausedManifests } from "../ops/static-pods.js";
import { writeTargets, type Layout } from "../store/layout.js";
import { acquireLock } from "../store/lock.js";
import { assertSafeDirs } from "../store/strict-modes.js";
import { recover } from "../store/transaction.js";
import type { Runtime } from "./runtime.js";

/**
 * Every directory node-join writes in, and each one from the root down to it, is a real directory,
 * not a planted link, and (as root) owned by root and writable by no one else.
 */
export function checkWriteTargets(l: Layout): void {
  for (const dir of writeTargets(l)) assertSafeDirs(l.root, dir);
}

/** Finishes or undoes what a killed run left behind: a journalled install, paused static pods. */
export function recoverInterrupted(rt: Runtime): void {
  const rec = recover(rt.layout);
  const restored = restorePausedManifests(rt.layout);
  if (rec.rolledForward || rec.removed.length || restored.length) {
    rt.log(
      `recovered an interrupted run: ${rec.rolledForward} file(s) completed, ${rec.removed.length} leftover(s) removed, ` +
        `${restored.length} static pod manifest(s) restored`,
    );
  }
}

/**
 * Runs `fn` under the lock, after recovery; a dry run takes no lock and recovers nothing, but
 * checks the write targets as the real run would.
 */
export async function locked<T>(rt: Runtime, dryRun: boolean, fn: () => Promise<T>): Promise<T> {
  checkWriteTargets(rt.layout);
  if (dryRun) return fn();
  const lock = acquireLock(rt.layout.lockFile);
  try {
    recoverInterrupted(rt);
    return await fn();
  } finally {
    lock.release();
  }
}
