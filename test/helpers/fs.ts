// Snapshots of a directory tree, to prove that a failed run changed nothing.
import { createHash } from "node:crypto";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

export type Snapshot = Map<string, string>;

export function snapshot(root: string): Snapshot {
  const out: Snapshot = new Map();
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const p = join(dir, name);
      const st = lstatSync(p);
      const rel = relative(root, p);
      if (st.isSymbolicLink()) out.set(rel, `link:${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(rel, `dir:${(st.mode & 0o7777).toString(8)}`);
        walk(p);
      } else
        out.set(
          rel,
          `file:${(st.mode & 0o7777).toString(8)}:${createHash("sha256").update(readFileSync(p)).digest("hex")}`,
        );
    }
  };
  walk(root);
  return out;
}

export function diffSnapshots(a: Snapshot, b: Snapshot): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k)).sort();
}

export function tempRoot(prefix = "nj-root-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A root where systemd is installed but not running (an installer's /target, an image). */
export function systemdRoot(prefix = "nj-systemd-"): string {
  const root = tempRoot(prefix);
  mkdirSync(join(root, "lib/systemd"), { recursive: true });
  writeFileSync(join(root, "lib/systemd/systemd"), "");
  return root;
}
