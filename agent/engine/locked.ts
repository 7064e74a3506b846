// The part of a run that writes, one at a time per root: the write targets are checked, the lock
// taken, what a killed run left behind finished or undone, and the lock released whatever happens.
import { UsageError } from "../common/errors.js";
import { restorePausedManifests } from "../ops/static-pods.js";
import type { Role } from "../pki/roles.js";
import { writeTargets, type Layout } from "../store/layout.js";
import { acquireLock } from "../store/lock.js";
import { assertSafeDirs } from "../store/strict-modes.js";
import { recover } from "../store/transaction.js";
import type { Runtime } from "./runtime.js";
import { notWrittenFor, writtenFor } from "./written.js";

/**
 * Every directory node-join writes in, and each one from the root down to it, is a real directory,
 * not a planted link, and (as root) owned by root and writable by no one else.
 */
export function checkWriteTargets(l: Layout): void {
  for (const dir of writeTargets(l)) assertSafeDirs(l.root, dir);
}

/**
 * Finishes or undoes what a killed run left behind: a journalled install or leave, paused static
 * pods. Says whether it completed a leave.
 */
export function recoverInterrupted(rt: Runtime, role: Role): { left: boolean } {
  const written = writtenFor(role, rt.layout).map((w) => w.path);
  const rec = recover(rt.layout, written);
  for (const path of rec.kept) rt.log(`kept ${path} (${notWrittenFor(role)})`);
  const restored = restorePausedManifests(rt.layout);
  if (rec.left) {
    rt.log(`completed an interrupted leave: ${rec.rolledForward} file(s) removed`);
  } else if (rec.rolledForward || rec.removed.length || restored.length) {
    rt.log(
      `recovered an interrupted run: ${rec.rolledForward} file(s) completed, ${rec.removed.length} leftover(s) removed, ` +
        `${restored.length} static pod manifest(s) restored`,
    );
  }
  return { left: rec.left };
}

/**
 * Runs `fn` under the lock, after recovery; a dry run takes no lock and recovers nothing, but
 * checks the write targets as the real run would. A command that works on a joined node (all but
 * join and leave: `afterLeave` false) stops when the recovery completed an interrupted leave: the
 * node is no longer joined, and renewing would join it again.
 */
export async function locked<T>(
  rt: Runtime,
  {
    dryRun,
    afterLeave,
    role,
  }: {
    dryRun: boolean;
    afterLeave: boolean;
    /** The node's role: an interrupted leave removes only the files node-join writes for it. */
    role: Role;
  },
  fn: () => Promise<T>,
): Promise<T> {
  checkWriteTargets(rt.layout);
  if (dryRun) return fn();
  const lock = acquireLock(rt.layout.lockFile);
  try {
    if (recoverInterrupted(rt, role).left && !afterLeave)
      throw new UsageError(
        `node-join left this root: an interrupted node-join leave was completed now; run node-join join to join it again`,
      );
    return await fn();
  } finally {
    lock.release();
  }
}
