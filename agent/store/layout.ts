// Where everything lives, relative to --root (default /), and how a path under the root reads on
// the booted host.
import { isAbsolute, join, relative, resolve } from "node:path";
import { UsageError } from "../common/errors.js";

/** Where restart-static-pods parks manifests while the kubelet stops their pods. */
export const PAUSED_MANIFESTS = "node-join-paused-manifests";

/**
 * Where `leave` moves a control plane's static pod manifests: beside the kubelet's staticPodPath,
 * which it does not read, for the operator to delete or to move back.
 */
export const LEFT_MANIFESTS = "manifests.node-join-left";

export interface Layout {
  root: string;
  kubernetesDir: string;
  manifestsDir: string;
  pausedManifestsDir: string;
  leftManifestsDir: string;
  pkiDir: string;
  kubeletPkiDir: string;
  configDir: string;
  configFile: string;
  /** The renewal unit's EnvironmentFile= (ops/timer.ts): read by systemd, as root. */
  environmentFile: string;
  stateDir: string;
  stateFile: string;
  lockFile: string;
  journalFile: string;
  backupDir: string;
  systemdDir: string;
  cronDir: string;
}

function refuseEmptyRoot(root: string): void {
  // join("", "/etc/kubernetes") is /etc/kubernetes but resolve("") is the working directory: an
  // empty --root would name a different tree to each caller, so it names none.
  if (root === "")
    throw new UsageError(
      '--root "": an empty path names no directory; give the root to operate on, such as / or /target',
    );
}

/** The absolute root directory of --root (default /); an empty one is refused. */
export function rootDir(given: string | undefined): string {
  refuseEmptyRoot(given ?? "/");
  return resolve(given ?? "/");
}

export function layout(root = "/"): Layout {
  refuseEmptyRoot(root);
  const r = (p: string) => join(root, p);
  return {
    root,
    kubernetesDir: r("/etc/kubernetes"),
    manifestsDir: r("/etc/kubernetes/manifests"),
    pausedManifestsDir: r(`/etc/kubernetes/${PAUSED_MANIFESTS}`),
    leftManifestsDir: r(`/etc/kubernetes/${LEFT_MANIFESTS}`),
    pkiDir: r("/etc/kubernetes/pki"),
    kubeletPkiDir: r("/var/lib/kubelet/pki"),
    configDir: r("/etc/node-join"),
    configFile: r("/etc/node-join/config.yaml"),
    environmentFile: r("/etc/node-join/environment"),
    stateDir: r("/var/lib/node-join"),
    stateFile: r("/var/lib/node-join/state.json"),
    lockFile: r("/var/lib/node-join/lock"),
    journalFile: r("/var/lib/node-join/journal.json"),
    backupDir: r("/var/lib/node-join/backup"),
    systemdDir: r("/etc/systemd/system"),
    cronDir: r("/etc/cron.d"),
  };
}

/** Directories the installer writes into; recovery scans them for leftovers. */
export function managedDirs(l: Layout): string[] {
  return [
    l.kubernetesDir,
    join(l.kubernetesDir, "kubelet.conf.d"),
    l.pkiDir,
    join(l.pkiDir, "etcd"),
    l.kubeletPkiDir,
    l.configDir,
    l.stateDir,
  ];
}

/**
 * Every directory a command may write in: the managed ones, backups, the static pod manifests and
 * where they are parked during a restart, timer units, cron.
 */
export function writeTargets(l: Layout): string[] {
  return [
    ...managedDirs(l),
    l.backupDir,
    l.manifestsDir,
    l.pausedManifestsDir,
    l.leftManifestsDir,
    l.systemdDir,
    l.cronDir,
  ];
}

/** The path a file under --root will have on the booted host (unchanged when not under root). */
export function hostPath(p: string, root: string): string {
  const rel = relative(resolve(root), resolve(p));
  if (root === "/" || rel.startsWith("..") || isAbsolute(rel)) return p;
  return `/${rel}`;
}

/**
 * The inverse, for paths read back from the persisted config when running with --root: the file
 * under root when it exists there, else the path as written (a file given from outside the root).
 */
export function underRoot(p: string, root: string, exists: (p: string) => boolean): string {
  if (root === "/" || !isAbsolute(p)) return p;
  const candidate = join(root, p);
  return exists(candidate) ? candidate : p;
}
