// Installs a set of files as one transaction. Every new file is staged beside its target first;
// a journal listing the moves is the commit point; then the moves happen. After a crash, recovery
// rolls a journalled transaction forward and removes stages of one that never reached its journal,
// so the set on disk is entirely old or entirely new.
import {
  copyFileSync,
  lstatSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  type Stats,
} from "node:fs";
import { dirname, isAbsolute, join, normalize, relative, sep } from "node:path";
import { ioError, LocalIoError } from "../common/errors.js";
import {
  ensureDir,
  fsyncDir,
  inspect,
  present,
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
import { readUntrusted } from "./safe-read.js";
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
 * (absolute paths) is still read: a journal left by an older node-join. Version 3 is `leave`'s
 * (commitRemoval): version 2 with files to remove, manifests to move on and the backups to drop;
 * a node-join that knows only versions 1 and 2 refuses it rather than half-following it.
 */
interface Journal {
  version: 1 | 2 | 3;
  moves: Move[];
  removes?: string[];
  parked?: string[];
  dropBackups?: boolean;
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

/** What a commit does (or would do) to one path. */
export interface PlannedFile {
  path: string;
  action: "create" | "replace";
  /** Octal, as ls and chmod write it; a symbolic link's is 0777, as lstat reports it. */
  mode: string;
  /** Set for a symbolic link: its target. */
  symlink?: string;
}

/** The changes a commit makes, each with its action and mode; unchanged files are left out. */
export function planCommit(changes: FileChange[]): PlannedFile[] {
  return changes.filter((c) => !isUnchanged(c)).map(planned);
}

function planned(c: FileChange): PlannedFile {
  return {
    path: c.path,
    action: inspect(c.path).kind === "missing" ? "create" : "replace",
    ...("symlink" in c
      ? { mode: "0777", symlink: c.symlink }
      : { mode: (c.mode & 0o7777).toString(8).padStart(4, "0") }),
  };
}

export interface CommitResult {
  changed: string[];
  /** The changed paths with what happened to each, in the order of `changed`. */
  files: PlannedFile[];
  backup?: string;
}

export function commit(
  changes: FileChange[],
  l: Layout,
  now: Date,
  crashPoint: CrashPoint = () => undefined,
): CommitResult {
  const pending = changes.filter((c) => !isUnchanged(c));
  if (pending.length === 0) return { changed: [], files: [] };
  const files = pending.map(planned);
  // A rename over a directory fails (EISDIR) only when its turn comes, with the moves before it
  // done: every target is checked before anything is staged, so such a set is refused whole.
  for (const c of pending) checkReplaceable(c.path);
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
  return { changed: pending.map((c) => c.path), files, ...(backup ? { backup } : {}) };
}

function applyMoves(moves: Move[], crashPoint: CrashPoint = () => undefined): void {
  moves.forEach((m, i) => {
    if (inspect(m.staged).kind !== "missing") renameDurable(m.staged, m.target);
    crashPoint(`move:${i}`);
  });
  for (const dir of new Set(moves.map((m) => dirname(m.target)))) fsyncDir(dir);
}

/** What else than a file or a symbolic link is at `st`, in words. */
function kindOf(st: Stats): string | undefined {
  if (st.isFile() || st.isSymbolicLink()) return undefined;
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isBlockDevice() || st.isCharacterDevice()) return "a device";
  return "not a regular file";
}

/**
 * Why `path` cannot be replaced by a rename, or undefined: node-join replaces files and symbolic
 * links; anything else at a target is the operator's.
 */
function notReplaceable(path: string): string | undefined {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw ioError("inspect", path, err);
  }
  const kind = kindOf(st);
  return kind && `it is ${kind}, not a file`;
}

function checkReplaceable(path: string): void {
  const why = notReplaceable(path);
  if (why)
    throw new LocalIoError(
      `cannot install ${path}: ${why}; nothing was changed: move it away and run again`,
    );
}

export interface RecoveryResult {
  rolledForward: number;
  removed: string[];
  /** What an interrupted leave's journal named in node-join's directories and was kept. */
  kept: string[];
  /** An interrupted `leave` was completed: node-join no longer manages this root. */
  left: boolean;
}

/**
 * Run under the lock before any command that writes: finishes or undoes an interrupted install,
 * or finishes an interrupted `leave`. A journal that names anything but node-join's own stages
 * beside targets in its own directories (and for a leave, files in them or in `written`) is
 * refused (LocalIoError, exit 6) with nothing moved, and left for the operator: following it
 * would move or remove files wherever it says. A leave removes only what is in `written`, the
 * files node-join writes for the node's role (engine/written.ts); whatever else in its
 * directories the journal names (admin.conf on a worker, a CA key) is kept and returned.
 */
export function recover(l: Layout, written: readonly string[] = []): RecoveryResult {
  let rolledForward = 0;
  let left = false;
  let kept: string[] = [];
  const journalText = readJournal(l.journalFile);
  if (journalText) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(journalText.toString("utf8"));
    } catch {
      parsed = undefined; // a torn journal was never the commit point: its rename did not happen
    }
    if (parsed !== undefined) {
      const moves = journalMoves(parsed, l);
      const removal = journalRemoval(parsed, l, written);
      rolledForward = moves.filter((m) => inspect(m.staged).kind !== "missing").length;
      applyMoves(moves);
      if (removal) {
        kept = removal.kept;
        rolledForward += removal.remove.filter((p) => inspect(p).kind !== "missing").length;
        applyRemoval(removal, l);
        left = true;
      }
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
  return { rolledForward, removed, kept, left };
}

/** The journal's bytes, or undefined; a link or a special file there is refused, never followed. */
function readJournal(file: string): Buffer | undefined {
  const r = readUntrusted(file);
  switch (r.kind) {
    case "missing":
      return undefined;
    case "symlink":
      throw refuseJournal(file, "it is a symbolic link");
    case "special":
    case "too-large":
      throw refuseJournal(file, "it is not a regular file node-join wrote");
    case "file":
      return r.content;
  }
}

function refuseJournal(file: string, why: string): LocalIoError {
  return new LocalIoError(
    `refusing the journal ${file}: ${why}; nothing was moved: check what it names, then remove it ` +
      `(the next run discards the staged files)`,
  );
}

/**
 * The moves of a parsed journal, each checked to be one a commit writes: the staged name
 * `.<name>.node-join-new` beside its target, the target directly in a directory node-join manages
 * (managedDirs), version 2 paths relative to the root without `..`, version 1 paths absolute and
 * under the root, the stage (where it is still there) a file or link and the target not a
 * directory. Any other journal is refused whole, before anything moves.
 */
function journalMoves(parsed: unknown, l: Layout): Move[] {
  const refuse = (why: string) => refuseJournal(l.journalFile, why);
  if (typeof parsed !== "object" || parsed === null) throw refuse("it is not a journal object");
  const { version, moves } = parsed as { version?: unknown; moves?: unknown };
  if (version !== 1 && version !== 2 && version !== 3)
    throw refuse(`unknown version ${JSON.stringify(version) ?? "(none)"}`);
  if (!Array.isArray(moves)) throw refuse("it has no list of moves");
  const managed = new Set(managedDirs(l));
  const resolvePath = (p: unknown, i: number, which: string): string => {
    const where = `move ${i + 1} ${which} ${JSON.stringify(p)}`;
    if (typeof p !== "string" || p === "") throw refuse(`${where} is not a path`);
    if (p.includes("\0")) throw refuse(`${where} is not a path`);
    if (normalize(p) !== p || p.split(sep).includes(".."))
      throw refuse(`${where} is not a plain path (no "..", ".", "//")`);
    if (version !== 1) {
      if (isAbsolute(p))
        throw refuse(`${where} is absolute; version ${version} names paths under the root`);
      return join(l.root, p);
    }
    if (!isAbsolute(p)) throw refuse(`${where} is not absolute, as version 1 names paths`);
    const rel = relative(l.root, p);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel))
      throw refuse(`${where} is outside the root ${l.root}`);
    return p;
  };
  return moves.map((m: unknown, i): Move => {
    const { staged, target } = (typeof m === "object" && m !== null ? m : {}) as {
      staged?: unknown;
      target?: unknown;
    };
    const t = resolvePath(target, i, "target");
    const st = resolvePath(staged, i, "staged");
    if (!managed.has(dirname(t)))
      throw refuse(`move ${i + 1} target ${t} is not in a directory node-join manages`);
    if (st !== stagedPathFor(t))
      throw refuse(`move ${i + 1} staged ${st} is not the stage of ${t} (${stagedPathFor(t)})`);
    for (const [which, p] of [
      ["staged", st],
      ["target", t],
    ] as const) {
      const why = notReplaceable(p);
      if (why) throw refuse(`move ${i + 1} ${which} ${p}: ${why}`);
    }
    return { staged: st, target: t };
  });
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
export function backupExisting(paths: string[], l: Layout, now: Date): string | undefined {
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

/** What `leave` removes as one transaction (commitRemoval). */
export interface Removal {
  /** Files and links to remove, in this order. */
  remove: string[];
  /** Static pod manifests (names) parked in pausedManifestsDir, moved on to leftManifestsDir. */
  parked: string[];
  /** The backup directory goes too (leave without --keep-backup). */
  dropBackups: boolean;
}

/**
 * The directories node-join creates only for its own files, removed by `leave` once empty,
 * innermost first (the state directory goes after the lock is released). /etc/kubernetes and
 * /var/lib/kubelet are the kubelet's and kubeadm's: they stay.
 */
export function leaveDirs(l: Layout): string[] {
  return [
    join(l.kubernetesDir, "kubelet.conf.d"),
    join(l.pkiDir, "etcd"),
    l.pkiDir,
    l.kubeletPkiDir,
    l.pausedManifestsDir,
    l.configDir,
  ];
}

/**
 * `leave`'s commit: the journal listing every removal is the commit point; before it the node is
 * joined (parked manifests are put back by recovery), after it recovery completes the removal.
 * Crash points: "journal", "remove:<n>", "done".
 */
export function commitRemoval(
  r: Removal,
  l: Layout,
  crashPoint: CrashPoint = () => undefined,
): void {
  const journal: Journal = {
    version: 3,
    moves: [],
    removes: r.remove.map((p) => relative(l.root, p)),
    parked: r.parked,
    dropBackups: r.dropBackups,
  };
  writeFileAtomic(l.journalFile, JSON.stringify(journal, null, 1), 0o600);
  crashPoint("journal");
  applyRemoval(r, l, crashPoint);
  removeIfExists(l.journalFile);
  fsyncDir(dirname(l.journalFile));
  crashPoint("done");
}

function applyRemoval(r: Removal, l: Layout, crashPoint: CrashPoint = () => undefined): void {
  if (r.parked.length > 0) {
    ensureDir(l.leftManifestsDir, 0o700);
    for (const name of r.parked) {
      const from = join(l.pausedManifestsDir, name);
      if (inspect(from).kind !== "missing") renameDurable(from, join(l.leftManifestsDir, name));
    }
    fsyncDir(l.leftManifestsDir);
  }
  r.remove.forEach((p, i) => {
    removeIfExists(p);
    crashPoint(`remove:${i}`);
  });
  for (const dir of new Set(r.remove.map((p) => dirname(p))))
    if (inspect(dir).kind !== "missing") fsyncDir(dir);
  if (r.dropBackups) rmSync(l.backupDir, { recursive: true, force: true });
  removeCreatedDirs([...leaveDirs(l)].reverse());
}

/**
 * The removal a version 3 journal names, each path checked as journalMoves checks a target; of
 * those in node-join's directories, the ones not in `written` are kept.
 */
function journalRemoval(
  parsed: unknown,
  l: Layout,
  written: readonly string[],
): (Removal & { kept: string[] }) | undefined {
  const j = parsed as Partial<Journal>;
  if (j.version !== 3) return undefined;
  const refuse = (why: string) => refuseJournal(l.journalFile, why);
  if (!Array.isArray(j.removes) || !Array.isArray(j.parked))
    throw refuse("a version 3 journal without its lists of removals and manifests");
  const managed = new Set(managedDirs(l));
  const ours = new Set(written);
  const named = j.removes.map((p: unknown, i) => {
    const where = `removal ${i + 1} ${JSON.stringify(p)}`;
    if (typeof p !== "string" || p === "" || p.includes("\0") || isAbsolute(p))
      throw refuse(`${where} is not a path under the root`);
    if (normalize(p) !== p || p.split(sep).includes(".."))
      throw refuse(`${where} is not a plain path (no "..", ".", "//")`);
    const abs = join(l.root, p);
    if (!managed.has(dirname(abs)) && !ours.has(abs))
      throw refuse(`${where} is not in a directory node-join manages`);
    const why = notReplaceable(abs);
    if (why) throw refuse(`${where}: ${why}`);
    return abs;
  });
  const parked = j.parked.map((n: unknown, i) => {
    if (typeof n !== "string" || !/^[A-Za-z0-9_.-]+\.yaml$/.test(n) || n.startsWith("."))
      throw refuse(`manifest ${i + 1} ${JSON.stringify(n)} is not a manifest's file name`);
    return n;
  });
  return {
    remove: named.filter((p) => ours.has(p)),
    kept: named.filter((p) => !ours.has(p) && present(p)),
    parked,
    dropBackups: j.dropBackups === true,
  };
}
