// What runs after a renewal, and only then: argv arrays without a shell (quoting cannot go wrong),
// with NODE_JOIN_RENEWED naming the renewed kinds, and without the CA secrets of the run.
import { childProcess, isSea } from "../common/builtins.js";
import { NodeJoinError } from "../common/errors.js";
import { CA_NAMES, CAS } from "../pki/cas.js";
import type { Role } from "../pki/roles.js";

/**
 * The secrets a CA backend reads from the environment, each behind a CA's prefix (ca/secrets.ts
 * secretEnvName): CFSSL's auth key, step-ca's one-time tokens and provisioner password.
 */
export const SECRET_ENV_SUFFIXES = ["AUTH_KEY", "TOKEN", "PASSWORD"] as const;

/** Every environment variable node-join reads a secret from: NODE_JOIN_ETCD_CA_TOKEN, … */
export function secretEnvNames(): string[] {
  return CA_NAMES.flatMap((ca) => SECRET_ENV_SUFFIXES.map((s) => `${CAS[ca].envPrefix}${s}`));
}

/**
 * Also any NODE_JOIN_ variable named like one: a hook is another program (often a user's script
 * that logs its environment), and a secret it never needs must not reach it, under whatever name a
 * later CA type reads it.
 */
const SECRET_LIKE = new RegExp(`^NODE_JOIN_(?:\\w*_)?(${SECRET_ENV_SUFFIXES.join("|")})$`);

/** The environment of a hook: the run's, without any secret, with what the hook is told. */
export function hookEnv(
  env: NodeJS.ProcessEnv,
  renewed: string[],
  root: string,
): NodeJS.ProcessEnv {
  const secrets = new Set(secretEnvNames());
  const out: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(env))
    if (!secrets.has(name) && !SECRET_LIKE.test(name)) out[name] = value;
  return { ...out, NODE_JOIN_RENEWED: renewed.join(","), NODE_JOIN_ROOT: root };
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
      env: hookEnv(env, renewed, root),
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
