// Every file node-join reads (installed certificates and keys, kubeconfigs, its state, lock,
// journal, config and secret files, CA files, the metrics textfile in node_exporter's directory)
// may have been planted or swapped by someone else: the final component
// is not followed unless asked (O_NOFOLLOW), the open cannot wait for a writer (O_NONBLOCK:
// open(2) on a FIFO without one blocks forever otherwise), only a regular file is read, the stat
// is taken from the open descriptor (no swap between check and read), and never more than a bound.
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { ioError, LocalIoError } from "../common/errors.js";

/** What a path held when it was read. */
export type UntrustedRead =
  | { kind: "missing" }
  | { kind: "symlink" }
  /** A directory, FIFO, socket or device: `what` says which, in words. */
  | { kind: "special"; what: string }
  | { kind: "too-large"; size: number }
  | { kind: "file"; content: Buffer; stat: Stats };

function kindOf(st: Stats): string {
  if (st.isDirectory()) return "a directory";
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  return "a device or other special file";
}

/** Large enough for any file node-join reads: keys, chains, kubeconfigs, its config, journal. */
export const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Reads `path` as described above. Only an unexpected failure throws (a LocalIoError naming the
 * file); what was found there is the caller's to judge.
 */
export function readUntrusted(
  path: string,
  opts: { maxBytes?: number; follow?: boolean } = {},
): UntrustedRead {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  let fd: number;
  try {
    // O_NOCTTY: a terminal opened by a root process must not become its controlling terminal.
    const flags = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;
    fd = openSync(path, opts.follow ? flags : flags | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { kind: "missing" };
    // open(2): O_NOFOLLOW on a symbolic link fails with ELOOP; a socket cannot be opened (ENXIO).
    if (code === "ELOOP" && !opts.follow) return { kind: "symlink" };
    if (code === "ENXIO") return { kind: "special", what: "a socket" };
    throw ioError("read", path, err);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return { kind: "special", what: kindOf(stat) };
    if (stat.size > maxBytes) return { kind: "too-large", size: stat.size };
    // Read to the end, whatever fstat said: a file that grew past the bound meanwhile is refused
    // the same way.
    const chunks: Buffer[] = [];
    let n = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, maxBytes + 1 - n));
      const got = readSync(fd, chunk, 0, chunk.length, null);
      if (got === 0) break;
      chunks.push(chunk.subarray(0, got));
      n += got;
      if (n > maxBytes) return { kind: "too-large", size: n };
    }
    return { kind: "file", content: Buffer.concat(chunks, n), stat };
  } catch (err) {
    throw ioError("read", path, err);
  } finally {
    closeSync(fd);
  }
}

/**
 * A FIFO, socket, device or directory where node-join reads a file: the host's tree is at fault
 * (exit 6), whoever reads it. Its own class so that a reader that turns unreadable files into a
 * problem to report (cert-store.ts readStored) lets this one through instead.
 */
export class SpecialFileError extends LocalIoError {}

/**
 * The content of the regular file at `path`, or undefined when nothing is there. Refuses (a
 * LocalIoError naming the file) a symbolic link unless `follow`, anything but a regular file
 * (SpecialFileError), and a file larger than `maxBytes`.
 */
export function readRegularFile(
  path: string,
  opts: { maxBytes?: number; follow?: boolean; what?: string } = {},
): Buffer | undefined {
  const r = readUntrusted(path, opts);
  const named = opts.what ? `${opts.what} ${path}` : path;
  switch (r.kind) {
    case "missing":
      return undefined;
    case "symlink":
      throw new LocalIoError(`not reading ${named}: it is a symbolic link`);
    case "special":
      throw new SpecialFileError(`not reading ${named}: it is ${r.what}, not a regular file`);
    case "too-large":
      throw new LocalIoError(
        `not reading ${named}: ${r.size} bytes, more than ${opts.maxBytes ?? DEFAULT_MAX_BYTES}`,
      );
    case "file":
      return r.content;
  }
}

/** readRegularFile with a bound of its own and no link followed. */
export function readRegularFileBounded(path: string, maxBytes: number): Buffer | undefined {
  return readRegularFile(path, { maxBytes });
}

/** readRegularFile, where nothing there is an error (exit 6, naming the file) too. */
export function readExistingFile(
  path: string,
  opts: { follow?: boolean; what?: string } = {},
): Buffer {
  const content = readRegularFile(path, opts);
  if (content === undefined) {
    const named = opts.what ? `${opts.what} ${path}` : path;
    throw new LocalIoError(`cannot read ${named}: no such file or directory (ENOENT)`, "ENOENT");
  }
  return content;
}
