// What runs after a renewal, and only then: argv arrays without a shell (quoting cannot go wrong),
// with NODE_JOIN_RENEWED naming the renewed kinds.
import { childProcess, isSea } from "../common/builtins.js";
import { NodeJoinError } from "../common/errors.js";
import type { Role } from "../pki/roles.js";

/** How this very program is started again (single binary, or node + bundle). */
export function selfArgv(): string[] {
  return isSea() ? [process.execPath] : [process.execPath, process.argv[1]!];
}

/**
 * kubelet does not re-read its client certificate, so it is restarted; control-plane static pods
 * are restarted the way kubeadm documents (manifest moved away, then back).
 */
export function defaultHooks(role: Role): string[][] {
  const kubelet = ["systemctl", "try-restart", "kubelet"];
  return role === "control-plane" ? [[...selfArgv(), "restart-static-pods"], kubelet] : [kubelet];
}

export interface HookRun {
  argv: string[];
  exitCode: number;
}

export function runHooks(
  hooks: string[][],
  renewed: string[],
  env: NodeJS.ProcessEnv,
  root: string,
  log: (l: string) => void,
): HookRun[] {
  const runs: HookRun[] = [];
  for (const argv of hooks) {
    log(`running hook: ${argv.join(" ")}`);
    const r = childProcess().spawnSync(argv[0]!, argv.slice(1), {
      env: { ...env, NODE_JOIN_RENEWED: renewed.join(","), NODE_JOIN_ROOT: root },
      stdio: ["ignore", "inherit", "inherit"],
      timeout: 10 * 60_000,
    });
    const exitCode = r.error ? 127 : (r.status ?? 128);
    if (r.error) log(`hook ${argv[0]} could not start: ${r.error.message}`);
    runs.push({ argv, exitCode });
  }
  const failed = runs.filter((r) => r.exitCode !== 0);
  if (failed.length) {
    throw new NodeJoinError(
      `renewed ${renewed.join(", ")}, but ${failed.map((f) => `hook "${f.argv.join(" ")}" exited ${f.exitCode}`).join("; ")}`,
    );
  }
  return runs;
}
