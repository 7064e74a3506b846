// sshd's StrictModes (sshd_config(5)) for a process that runs as root: a file or directory that
// steers root (its config, its secrets, the directories it writes in) must belong to root and be
// writable by no one else, or another local user could change what root reads or repoint what it
// writes. OpenSSH refuses such paths (misc.c safe_path(): owner neither root nor the user, or mode
// & 022); node-join refuses them too, with the command that fixes them.
import { readUntrusted } from "./safe-read.js";
import { lstatSync, readlinkSync } from "node:fs";
import type { Stats } from "node:fs";
import { join, relative, sep } from "node:path";
import { ioError, LocalIoError, UsageError } from "../common/errors.js";

/**
 * Who must own what steers this run: root (uid 0) when node-join runs as root, whose runs others'
 * files could steer; false otherwise (owners and the config's and directories' modes are then not
 * checked). Tests pass another uid to check the rules as any user.
 */
export type Owner = number | false;

export function requiredOwner(): Owner {
  return typeof process.geteuid === "function" && process.geteuid() === 0 ? 0 : false;
}

const octal = (mode: number): string => (mode & 0o7777).toString(8).padStart(4, "0");

const GROUP_OTHER_WRITE = 0o022;
const GROUP_OTHER_ANY = 0o077;

/**
 * Config: trusted content (hooks run from it), so nobody but root may change it. Secret: nobody
 * but root may read it either. Environment: the renewal unit's EnvironmentFile=, a config (its
 * NODE_JOIN_* variables override the config file) that may also hold the proxy's credentials, so
 * its fix is the secret's mode.
 */
export type TrustedKind = "config" | "secret" | "environment";

/** `path` as a shell word, so that the fix can be pasted as it is. */
const sh = (path: string): string =>
  /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;

interface Problem {
  why: string;
  fix: string;
}

/** `chmod`: the mode change that fixes a forbidden mode, e.g. "go-w". */
function problemsOf(
  st: Stats,
  path: string,
  forbidden: number,
  owner: Owner,
  chmod: string,
): Problem[] {
  const out: Problem[] = [];
  if (owner !== false && st.uid !== owner) {
    const who = owner === 0 ? "root" : `uid ${owner}`;
    const chown = owner === 0 ? "root:root" : String(owner);
    out.push({ why: `is owned by uid ${st.uid}, not ${who}`, fix: `chown ${chown} ${sh(path)}` });
  }
  const bad = st.mode & forbidden;
  if (bad !== 0) {
    const who =
      forbidden === GROUP_OTHER_WRITE
        ? "writable by group or others"
        : (bad & 0o044) !== 0
          ? "readable by group or others"
          : "accessible by group or others";
    out.push({
      why: `is ${who} (mode ${octal(st.mode)})`,
      fix: `chmod ${chmod} ${sh(path)}`,
    });
  }
  return out;
}

function describe(problems: Problem[]): string {
  return `${problems.map((p) => p.why).join(" and ")}; fix with: ${problems.map((p) => p.fix).join(" && ")}`;
}

/**
 * Refuses `st` (the file `path`, read as `what`) unless it may steer root. Secret files are
 * checked for their mode whoever runs node-join (a key readable by others leaks whoever reads it);
 * ownership, and a config's mode, only when running as root (a developer's umask 002 makes 0664
 * files that steer nobody but that developer).
 */
export function checkTrustedStat(
  st: Stats,
  path: string,
  what: string,
  kind: TrustedKind,
  owner: Owner = requiredOwner(),
): void {
  const forbidden = kind === "secret" ? GROUP_OTHER_ANY : owner !== false ? GROUP_OTHER_WRITE : 0;
  const problems = problemsOf(st, path, forbidden, owner, kind === "config" ? "go-w" : "600");
  if (problems.length) throw new UsageError(`${what} ${path} ${describe(problems)}`);
}

/**
 * Reads a config or secret file after checking, on the open descriptor (no window between check
 * and read), that it is a regular file root may trust. O_NONBLOCK: a FIFO planted at the path is
 * refused instead of blocking the run forever. `noFollow` refuses a symbolic link at the path.
 */
export function readTrustedFile(
  path: string,
  what: string,
  kind: TrustedKind,
  opts: TrustedReadOptions = {},
): Buffer {
  const content = readTrustedIfThere(path, what, kind, opts);
  if (content !== undefined) return content;
  throw ioError(`read ${what}`, path, Object.assign(new Error("no such file"), { code: "ENOENT" }));
}

export interface TrustedReadOptions {
  noFollow?: boolean;
  owner?: Owner;
}

/** readTrustedFile, but undefined where nothing is at `path`. */
export function readTrustedIfThere(
  path: string,
  what: string,
  kind: TrustedKind,
  opts: TrustedReadOptions = {},
): Buffer | undefined {
  const r = readUntrusted(path, { follow: !opts.noFollow });
  switch (r.kind) {
    case "missing":
      return undefined;
    case "symlink":
      throw new UsageError(`${what} ${path} is a symbolic link; give the file itself`);
    case "special":
      throw new UsageError(`${what} ${path} is not a regular file (it is ${r.what})`);
    case "too-large":
      throw new UsageError(`${what} ${path} is not a file node-join reads (${r.size} bytes)`);
    case "file":
      checkTrustedStat(r.stat, path, what, kind, opts.owner ?? requiredOwner());
      return r.content;
  }
}

/**
 * Refuses the directories from below `root` down to `dir` that exist and are not fit to be
 * written in by root: a symbolic link where a directory belongs (anyone able to plant it redirects
 * the write outside the root), and, when running as root, one that another user owns or that
 * group or others may write (they could swap a file or a link inside it between node-join's check
 * and its use). `root` itself and what is above it are the operator's choice (an installer's
 * /target, a test's temporary directory) and are not checked. Exit 6: the host's tree is at fault.
 */
export function assertSafeDirs(root: string, dir: string, owner: Owner = requiredOwner()): void {
  const rel = relative(root, dir);
  if (rel === "" || rel.startsWith("..")) return;
  let current = root;
  for (const part of rel.split(sep)) {
    current = join(current, part);
    let st: Stats;
    try {
      st = lstatSync(current);
    } catch {
      return; // does not exist yet: node-join creates it as a directory, root-owned, 0755 or less
    }
    if (st.isSymbolicLink()) {
      throw new LocalIoError(
        `refusing to write under ${current}: it is a symbolic link (to ${readlinkSync(current)}), not a directory`,
      );
    }
    if (!st.isDirectory()) return; // writing under it fails, naming the file, before any change
    const forbidden = owner !== false ? GROUP_OTHER_WRITE : 0;
    const problems = problemsOf(st, current, forbidden, owner, "go-w");
    if (problems.length)
      throw new LocalIoError(`refusing to write under ${current}: it ${describe(problems)}`);
  }
}

/**
 * Refuses the renewal unit's environment file (ops/timer.ts RENEW_ENVIRONMENT_FILE, under the
 * root) unless it may steer root as the config may: systemd reads it as root for every renewal
 * (systemd.exec(5) EnvironmentFile=), and its NODE_JOIN_* variables override the config, the CA
 * URLs and pins included. None there is fine: the unit's "-" makes it optional. Read on the
 * descriptor that is checked; systemd follows a symbolic link there, and so does this check.
 */
export function checkEnvironmentFile(path: string, owner: Owner = requiredOwner()): void {
  readTrustedIfThere(path, "environment file", "environment", { owner });
}
