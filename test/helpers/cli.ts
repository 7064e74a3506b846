// Runs node-join as a separate process, the way a user does: the esbuild bundle by default, or the
// single binary named by NODE_JOIN_BIN.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const BUNDLE = join(REPO, "dist", "node-join.cjs");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function binary(): string[] {
  const bin = process.env.NODE_JOIN_BIN;
  if (bin) return [bin];
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} missing: run npm run build first`);
  return [process.execPath, BUNDLE];
}

export interface Spawned extends CliResult {
  signal: NodeJS.Signals | null;
}

/**
 * Runs a command without blocking the event loop and collects its output (killed after the
 * timeout).
 */
export function spawnCollect(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal === "SIGKILL" ? 137 : 128), signal, stdout, stderr });
    });
    if (child.stdin) {
      child.stdin.on("error", () => undefined); // a child that exits without reading its input
      child.stdin.end(opts.input);
    }
  });
}

export async function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<CliResult> {
  const [cmd, ...pre] = binary();
  const r = await spawnCollect(cmd!, [...pre, ...args], {
    ...opts,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...opts.env },
  });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr };
}

export function json<T = Record<string, unknown>>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}):\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}
