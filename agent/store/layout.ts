// Where everything lives, relative to --root (default /).
import { join } from "node:path";

export interface Layout {
  root: string;
  kubernetesDir: string;
  pkiDir: string;
  kubeletPkiDir: string;
  configDir: string;
  configFile: string;
  stateDir: string;
  stateFile: string;
  lockFile: string;
  journalFile: string;
  backupDir: string;
  systemdDir: string;
  cronDir: string;
}

export function layout(root = "/"): Layout {
  const r = (p: string) => join(root, p);
  return {
    root,
    kubernetesDir: r("/etc/kubernetes"),
    pkiDir: r("/etc/kubernetes/pki"),
    kubeletPkiDir: r("/var/lib/kubelet/pki"),
    configDir: r("/etc/node-join"),
    configFile: r("/etc/node-join/config.yaml"),
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
  return [l.kubernetesDir, join(l.kubernetesDir, "kubelet.conf.d"), l.pkiDir, join(l.pkiDir, "etcd"), l.kubeletPkiDir, l.configDir, l.stateDir];
}
