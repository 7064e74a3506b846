// join's pre-flight for --dry-run: can this user write where join would? A dry run that says
// "would create …" and exits 0 where the real run fails at its first write (a non-root user on
// the real root) promises what it cannot keep, so it fails first, as the real run would.
import { accessSync, constants, existsSync } from "node:fs";
import { dirname } from "node:path";
import { LocalIoError } from "../common/errors.js";
import type { Layout } from "./layout.js";

/** What the check asks of the file system: passed in, so tests need no second user. */
export interface WritableFs {
  exists(path: string): boolean;
  /** access(2) with W_OK (and X_OK, to create entries in a directory). */
  writable(path: string): boolean;
}

export const realWritableFs: WritableFs = {
  exists: existsSync,
  writable: (p) => {
    try {
      accessSync(p, constants.W_OK | constants.X_OK);
      return true;
    } catch {
      return false;
    }
  },
};

/** The directories join writes into or creates: certificates, kubeconfigs, config and state. */
export function joinDirs(l: Layout): string[] {
  return [l.kubernetesDir, l.pkiDir, l.kubeletPkiDir, l.configDir, l.stateDir];
}

/** The directory itself if it exists, else its nearest existing parent: where a write lands. */
export function nearestExisting(dir: string, fs: WritableFs): string {
  let d = dir;
  while (!fs.exists(d) && dirname(d) !== d) d = dirname(d);
  return d;
}

/** The first directory this user cannot write (or create), with the directory that refuses it. */
export function firstUnwritable(
  dirs: readonly string[],
  fs: WritableFs,
): { dir: string; at: string } | undefined {
  for (const dir of dirs) {
    const at = nearestExisting(dir, fs);
    if (!fs.writable(at)) return { dir, at };
  }
  return undefined;
}

/**
 * Throws the error the real run would meet (exit 6, EACCES: the CLI adds "run as root, or use
 * --root" for a non-root user), naming the directory.
 */
export function checkWritable(dirs: readonly string[], fs: WritableFs = realWritableFs): void {
  const found = firstUnwritable(dirs, fs);
  if (!found) return;
  const where = found.at === found.dir ? "" : ` (${found.at} does not let this user create it)`;
  throw new LocalIoError(`cannot write ${found.dir}${where}`, "EACCES");
}
