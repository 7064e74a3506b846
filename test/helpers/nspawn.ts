// A real systemd, booted in a container (systemd-nspawn) whose root is this host's root with a
// tmpfs over it (--volatile=overlay): the tests run the renewal units as systemd runs them, with
// their sandboxing, and nothing written inside reaches the host. The container shares the host's
// network, so it reaches the test CAs on loopback. Needs root and systemd-container.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { requireCommand } from "./cfssl.js";
import { binary, REPO, spawnCollect, type Spawned } from "./cli.js";

export interface Booted {
  /** PID of the container's systemd, as the host sees it. */
  pid: number;
  /** Runs a command inside the container (all its namespaces), as root, with this environment. */
  exec(
    argv: string[],
    o?: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number },
  ): Promise<Spawned>;
  /** Runs a command and fails with its output unless it exits 0; returns stdout. */
  ok(argv: string[], o?: { env?: NodeJS.ProcessEnv; input?: string }): Promise<string>;
  /** Writes a file inside the container (through the container's own view of it). */
  write(path: string, content: string, mode?: string): Promise<void>;
  /**
   * The node-join under test (the bundle, or the binary NODE_JOIN_BIN names), copied to
   * /opt/node-join-test in the container, as the argv that runs it there. Copied because the
   * renewal unit runs with PrivateTmp: a checkout under /tmp (CI clones there) is out of its sight,
   * as a binary in /tmp would be on a real node.
   */
  self(): Promise<string[]>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Containers booted by this process: each gets a machine name of its own. */
let boots = 0;

/** A boot whose container's systemd came up in another state than running or degraded. */
class NotBootedError extends Error {}

/**
 * Boots the host's root in a container up to basic.target: systemd, journald, no services of the
 * host's multi-user.target (a database or etcd of the host would take the host's ports). A boot
 * whose systemd reports another state (seen once as "offline", the container halting at once
 * while nspawn was cleaning up after the one before) is tried once more with a fresh container;
 * a second such boot fails with both logs.
 */
export async function bootHostContainer(): Promise<Booted> {
  try {
    return await bootOnce();
  } catch (err) {
    if (!(err instanceof NotBootedError)) throw err;
    try {
      return await bootOnce();
    } catch (again) {
      throw new Error(`${(again as Error).message}\n(first boot: ${err.message})`, {
        cause: again,
      });
    }
  }
}

async function bootOnce(): Promise<Booted> {
  requireCommand("systemd-nspawn", "systemd-container");
  requireCommand("nsenter", "util-linux");
  const dir = mkdtempSync(join(tmpdir(), "nj-nspawn-"));
  // The host's root alone (not its /proc, /sys, /dev mounts): nspawn mounts the container's own.
  const bind = spawnSync("mount", ["--bind", "/", dir], { encoding: "utf8" });
  if (bind.status !== 0) throw new Error(`mount --bind / ${dir}: ${bind.stderr}`);
  // One name per container: nspawn keeps per-machine state (/run/systemd/nspawn/propagate/<name>)
  // that the container before may still be tearing down.
  const name = `nj${process.pid}-${++boots}`;
  let log = "";
  // --register=no --keep-unit: the host need not run systemd (no machined, no scope unit).
  const nspawn: ChildProcess = spawn(
    "systemd-nspawn",
    [
      "--directory",
      dir,
      "--volatile=overlay",
      "--boot",
      "--register=no",
      "--keep-unit",
      "--console=pipe",
      "--machine",
      name,
      // node-join itself, wherever this checkout lives: nspawn gives the container a /tmp of its
      // own, so a clone under /tmp (as CI makes one) is otherwise not there.
      `--bind-ro=${join(REPO, "dist")}`,
      "systemd.unit=basic.target",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  nspawn.stdout!.on("data", (d) => (log += d));
  nspawn.stderr!.on("data", (d) => (log += d));
  const exited = new Promise<void>((r) => nspawn.on("exit", () => r()));
  const cleanup = async () => {
    if (nspawn.exitCode === null && nspawn.signalCode === null) {
      nspawn.kill("SIGTERM"); // nspawn halts the container
      const t = setTimeout(() => nspawn.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(t);
    }
    spawnSync("umount", [dir]);
    try {
      rmdirSync(dir);
    } catch {
      // still mounted: leave the empty directory
    }
  };
  let pid: number | undefined;
  for (let i = 0; i < 200 && pid === undefined; i++) {
    if (nspawn.exitCode !== null) break;
    const init = childPids(nspawn.pid!).find((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, "utf8").trim() === "systemd";
      } catch {
        return false;
      }
    });
    if (init) pid = init;
    else await sleep(100);
  }
  if (pid === undefined) {
    await cleanup();
    throw new Error(`systemd-nspawn did not boot the container:\n${log}`);
  }
  const target = pid;
  const exec: Booted["exec"] = (argv, o = {}) =>
    spawnCollect("nsenter", ["--target", String(target), "--all", "--", ...argv], {
      env: o.env ?? { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" },
      ...(o.input !== undefined ? { input: o.input } : {}),
      timeoutMs: o.timeoutMs ?? 120_000,
    });
  const ok: Booted["ok"] = async (argv, o = {}) => {
    const r = await exec(argv, o);
    if (r.code !== 0)
      throw new Error(
        `in the container: ${argv.join(" ")} exited ${r.code}\n${r.stdout}${r.stderr}`,
      );
    return r.stdout;
  };
  // Wait for the boot to finish (basic.target reached, or degraded: a unit of the host failed);
  // systemctl cannot connect until systemd has made its socket.
  let state: Spawned = { code: 1, signal: null, stdout: "", stderr: "" };
  for (let i = 0; i < 300; i++) {
    state = await exec(["systemctl", "is-system-running", "--wait"], { timeoutMs: 90_000 });
    if (!/Failed to connect to bus/.test(state.stderr)) break;
    await sleep(100);
  }
  if (!/^(running|degraded)\s*$/.test(state.stdout)) {
    await cleanup();
    throw new NotBootedError(
      `the container's systemd is ${state.stdout.trim()}: ${state.stderr}\n${log}`,
    );
  }
  return {
    pid: target,
    exec,
    ok,
    write: async (path, content, mode = "0644") => {
      // cat from its stdin: Node's stdio pipes are sockets, which /dev/stdin cannot open
      await ok(
        ["sh", "-c", 'mkdir -p "$(dirname "$0")" && cat > "$0" && chmod "$1" "$0"', path, mode],
        { input: content },
      );
    },
    self: async () => {
      const argv = binary();
      const file = argv[argv.length - 1]!;
      const dest = `/opt/node-join-test/${basename(file)}`;
      await ok(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cp "$0" "$1"', file, dest]);
      return [...argv.slice(0, -1), dest];
    },
    stop: cleanup,
  };
}
