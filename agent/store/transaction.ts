// Installs a set of files as one transaction. Every new file is staged beside its target first;
// a journal listing the moves is the commit point; then the moves happen. After a crash, recovery
// rolls a journalled transaction forward and removes stages of one that never reached its journal,
// so the set on disk is entirely old or entirely new.
import { copyFileSync, lstatSync, readdirSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { ioError } from "../common/errors.js";
import {
  ensureDir,
  fsyncDir,
  inspect,
  readIfExists,
  removeCreatedDirs,
  removeIfExists,
  renameDurable,
  STAGED_SUFFIX,
  stagedPathFor,
  symlinkStaged,
  TMP_MARK,
  writeFileAtomic,
  writeStaged,
} from "./fsio.js";
import { managedDirs, type Layout } from "./layout.js";

export type FileChange =
  { path: string; content: string | Buffer; mode: number } | { path: string; symlink: string };

interface Move {
  staged: string;
  target: string;
}

/**
 * Version 2 names files relative to the root, so a transaction interrupted under --root (an
 * installer's /target) is completed the same when the booted host recovers it at /. Version 1
 * (absolute paths) is still read: a journal left by an older node-join.
 */
interface Journal {
  version: 1 | 2;
  moves: Move[];
}

/** How many previous sets are kept under /var/lib/node-join/backup. */
export const BACKUPS_KEPT = 3;

/**
 * Called at each step of a commit ("stage", "journal", "move:<n>", "done"), where a crash leaves a
 * distinct state on disk. Production passes none; tests stop or kill the process there and check
 * that recovery leaves the set entirely old or entirely new.
 */
export type CrashPoint = (step: string) => void;

export function isUnchanged(change: FileChange): boolean {
  const now = inspect(change.path);
  if ("symlink" in change) return now.kind === "symlink" && now.target === change.symlink;
  const want = typeof change.content === "string" ? Buffer.from(change.content) : change.content;
  return now.kind === "file" && now.mode === change.mode && now.content!.equals(want);
}

export interface CommitResult {
  changed: string[];
  backup?: string;
}

export function commit(
  changes: FileChange[],
  l: Layout,
  now: Date,
  crashPoint: CrashPoint = () => undefined,
): CommitResult {
  const pending = changes.filter((c) => !isUnchanged(c));
  if (pending.length === 0) return { changed: [] };
  const moves: Move[] = [];
  const createdDirs: string[] = [];
  const undoStage = (): void => {
    for (const m of moves) removeIfExists(m.staged);
    removeCreatedDirs(createdDirs);
  };
  let backup: string | undefined;
  try {
    for (const c of pending) {
      const staged = stagedPathFor(c.path);
      moves.push({ staged, target: c.path });
      createdDirs.push(
        ...("symlink" in c
          ? symlinkStaged(staged, c.symlink)
          : writeStaged(staged, c.content, c.mode)),
      );
    }
    for (const dir of new Set(moves.map((m) => dirname(m.staged)))) fsyncDir(dir);
    crashPoint("stage");
    backup = backupExisting(
      pending.map((c) => c.path),
      l,
      now,
    );
  } catch (err) {
    undoStage();
    throw err;
  }
  const rel = (p: string) => relative(l.root, p);
  const journal: Journal = {
    version: 2,
    moves: moves.map((m) => ({ staged: rel(m.staged), target: rel(m.target) })),
  };
  writeFileAtomic(l.journalFile, JSON.stringify(journal, null, 1), 0o600);
  crashPoint("journal");
  applyMoves(moves, crashPoint);
  removeIfExists(l.journalFile);
  fsyncDir(dirname(l.journalFile));
  crashPoint("done");
  return { changed: pending.map((c) => c.path), ...(backup ? { backup } : {}) };
}

function applyMoves(moves: Move[], crashPoint: CrashPoint = () => undefined): void {
  moves.forEach((m, i) => {
    if (inspect(m.staged).kind !== "missing") renameDurable(m.staged, m.target);
    crashPoint(`move:${i}`);
  });
  for (const dir of new Set(moves.map((m) => dirname(m.target)))) fsyncDir(dir);
}

export interface RecoveryResult {
  rolledForward: number;
  removed: string[];
}

/** Run under the lock before any command that writes: finishes or undoes an interrupted install. */
export function recover(l: Layout): RecoveryResult {
  let rolledForward = 0;
  const journalText = readIfExists(l.journalFile);
  if (journalText) {
    let journal: Journal | undefined;
    try {
      journal = JSON.parse(journalText.toString("utf8")) as Journal;
    } catch {
      journal = undefined; // a torn journal was never the commit point: its rename did not happen
    }
    if (journal && Array.isArray(journal.moves)) {
      const at = (p: string) => (journal.version === 2 ? join(l.root, p) : p);
      const moves = journal.moves.map((m) => ({ staged: at(m.staged), target: at(m.target) }));
      rolledForward = moves.filter((m) => inspect(m.staged).kind !== "missing").length;
      applyMoves(moves);
    }
    removeIfExists(l.journalFile);
  }
  const removed: string[] = [];
  for (const dir of managedDirs(l)) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (name.startsWith(".") && (name.endsWith(STAGED_SUFFIX) || name.includes(TMP_MARK))) {
        removeIfExists(join(dir, name));
        removed.push(join(dir, name));
      }
    }
  }
  return { rolledForward, removed };
}

function stamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
}

/**
 * Copies what is about to be replaced into backup/<timestamp>/ (paths relative to root); keeps the
 * last 3.
 */
function backupExisting(paths: string[], l: Layout, now: Date): string | undefined {
  const existing = paths.filter((p) => inspect(p).kind === "file" || inspect(p).kind === "symlink");
  if (existing.length === 0) return undefined;
  let dir = join(l.backupDir, stamp(now));
  for (let n = 1; inspect(dir).kind !== "missing"; n++)
    dir = join(l.backupDir, `${stamp(now)}-${n}`);
  try {
    for (const p of existing) {
      const dest = join(dir, relative(l.root, p));
      ensureDir(dirname(dest), 0o700);
      if (lstatSync(p).isSymbolicLink()) symlinkSync(readlinkSync(p), dest);
      else copyFileSync(p, dest);
    }
    fsyncDir(dir);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw ioError("back up the previous files into", dir, err);
  }
  const all = readdirSync(l.backupDir).sort();
  for (const old of all.slice(0, Math.max(0, all.length - BACKUPS_KEPT)))
    rmSync(join(l.backupDir, old), { recursive: true, force: true });
  return dir;
}
