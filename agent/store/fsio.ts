// Durable file primitives: write to a temp file in the same directory, fsync, rename, fsync the
// directory. Targets are never followed through symlinks (O_NOFOLLOW, rename replaces the link).
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeSync,
  fchmodSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { ioError } from "../common/errors.js";
import { readExistingFile } from "./safe-read.js";

export const TMP_MARK = ".node-join-tmp-";
export const STAGED_SUFFIX = ".node-join-new";

export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    fsyncSync(fd);
  } catch (err) {
    throw ioError("sync directory", dir, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * mkdir -p; refuses a path component that is a symlink planted where a directory belongs.
 * Returns the directories it created, outermost first, so a failed run can remove them again.
 */
export function ensureDir(dir: string, mode = 0o755): string[] {
  const created: string[] = [];
  try {
    for (let d = dir; inspect(d).kind === "missing"; d = dirname(d)) created.unshift(d);
    mkdirSync(dir, { recursive: true, mode });
    if (lstatSync(dir).isSymbolicLink()) throw new Error("is a symbolic link, not a directory");
  } catch (err) {
    throw ioError("create directory", dir, err);
  }
  return created;
}

/** Removes directories a failed run created, innermost first, as long as they are empty. */
export function removeCreatedDirs(dirs: string[]): void {
  for (const d of [...dirs].reverse()) {
    try {
      rmdirSync(d);
    } catch {
      // not empty (someone else wrote there) or already gone: leave it
    }
  }
}

/** Writes `data` to `path` exactly (no temp file, no rename): O_EXCL|O_NOFOLLOW, fsync. */
export function writeNew(path: string, data: string | Buffer, mode: number): void {
  let fd: number | undefined;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      mode,
    );
    fchmodSync(fd, mode); // the umask must not widen or narrow kubeadm's modes
    const buf = typeof data === "string" ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    if (fd !== undefined) {
      closeSync(fd);
      fd = undefined;
      try {
        unlinkSync(path);
      } catch {
        // nothing to clean
      }
    }
    throw ioError("write", path, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export function tempPathFor(path: string): string {
  return join(
    dirname(path),
    `.${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString("hex")}`,
  );
}

/** The name a file is staged under before a transaction moves it into place. */
export function stagedPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}${STAGED_SUFFIX}`);
}

/** Atomic replace of one file. */
export function writeFileAtomic(path: string, data: string | Buffer, mode: number): void {
  ensureDir(dirname(path));
  const tmp = tempPathFor(path);
  writeNew(tmp, data, mode);
  try {
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw ioError("rename into", path, err);
  }
  fsyncDir(dirname(path));
}

/** Writes a staged file (its final content and mode) that a later rename makes live. */
export function writeStaged(staged: string, data: string | Buffer, mode: number): string[] {
  const created = ensureDir(dirname(staged));
  removeIfExists(staged);
  writeNew(staged, data, mode);
  return created;
}

export function symlinkStaged(staged: string, target: string): string[] {
  const created = ensureDir(dirname(staged));
  removeIfExists(staged);
  try {
    symlinkSync(target, staged);
  } catch (err) {
    throw ioError("create symlink", staged, err);
  }
  return created;
}

export function removeIfExists(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw ioError("remove", path, err);
  }
}

export interface FileState {
  kind: "file" | "symlink" | "missing" | "other";
  content?: Buffer;
  mode?: number;
  target?: string;
}

/** Whether anything is at `path` (a link not followed); never opens it. */
export function present(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw ioError("inspect", path, err);
  }
}

/** What is at `path`, without following a symlink. */
export function inspect(path: string): FileState {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    throw ioError("inspect", path, err);
  }
  if (st.isSymbolicLink()) return { kind: "symlink", target: readlinkSync(path) };
  if (!st.isFile()) return { kind: "other" };
  return { kind: "file", content: readNoFollow(path), mode: st.mode & 0o7777 };
}

/**
 * The regular file at `path`, not through a link: read as every file node-join reads
 * (safe-read.ts), so that a FIFO planted there is refused (exit 6) instead of blocking the run.
 */
export function readNoFollow(path: string): Buffer {
  return readExistingFile(path);
}

export function renameDurable(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    throw ioError("move into place", to, err);
  }
}
