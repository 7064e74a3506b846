// What runs after a renewal, and only then: argv arrays without a shell (quoting cannot go wrong),
// with NODE_JOIN_RENEWED naming the renewed kinds, and without the CA and proxy secrets of the run.
import { childProcess, isSea, type SecretFreeEnv } from "../common/builtins.js";
import { NodeJoinError, systemErrorText } from "../common/errors.js";
import type { Role } from "../pki/roles.js";

/**
 * The environment of a hook: the run's without its secrets (a hook is another program, often a
 * user's script that logs its environment), with what the hook is told.
 */
export function hookEnv(env: SecretFreeEnv, renewed: string[], root: string): NodeJS.ProcessEnv {
  return { ...env, NODE_JOIN_RENEWED: renewed.join(","), NODE_JOIN_ROOT: root };
}

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

/**
 * Why a hook failed, in words: a program that does not exist is "not found" (spawn's ENOENT; the
 * run records exit 127, as a shell would), and so is a shell's own exit 127 (POSIX: command not
 * found); a program that cannot start says why.
 */
function hookFailure(run: HookRun, startError: Error | undefined): string {
  const hook = `hook "${run.argv.join(" ")}"`;
  if ((startError as NodeJS.ErrnoException | undefined)?.code === "ENOENT")
    return `${hook}: ${run.argv[0]} not found`;
  if (startError) return `${hook} could not start: ${systemErrorText(startError)}`;
  if (run.exitCode === 127) return `${hook} exited 127: a command it runs was not found`;
  return `${hook} exited ${run.exitCode}`;
}

export function runHooks(
  hooks: string[][],
  renewed: string[],
  env: SecretFreeEnv,
  root: string,
  log: (l: string) => void,
  /** The failure's message from the failed hooks' descriptions (default: renew's). */
  failed: (failures: string) => string = (f) => `renewed ${renewed.join(", ")}, but ${f}`,
): HookRun[] {
  const runs: HookRun[] = [];
  const failures: string[] = [];
  for (const argv of hooks) {
    log(`running hook: ${argv.join(" ")}`);
    const r = childProcess().spawnSync(argv[0]!, argv.slice(1), {
      env: hookEnv(env, renewed, root),
      stdio: ["ignore", "inherit", "inherit"],
      timeout: 10 * 60_000,
    });
    const run = { argv, exitCode: r.error ? 127 : (r.status ?? 128) };
    if (run.exitCode !== 0) failures.push(hookFailure(run, r.error));
    runs.push(run);
  }
  if (failures.length) throw new NodeJoinError(failed(failures.join("; ")));
  return runs;
}
