// A real HTTP proxy on loopback: Debian's tinyproxy, in the foreground (-d) with its own config in
// a temporary directory, so the tests see what an edge network's proxy does (CONNECT for https://,
// absolute-form requests for http://, Basic proxy authentication, 407 and 5xx answers).
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, requireCommand } from "./cfssl.js";
import { waitListening } from "./listening.js";

export interface Tinyproxy {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  /** Every request line tinyproxy logged ("CONNECT 127.0.0.1:9000", "POST http://..."). */
  requests(): string[];
  stop(): Promise<void>;
}

export interface TinyproxyOptions {
  /** BasicAuth: tinyproxy answers 407 without these credentials. */
  basicAuth?: { user: string; password: string };
  /** ConnectPort: CONNECT only to these ports (tinyproxy answers 403 otherwise); default any. */
  connectPorts?: number[];
}

export async function startTinyproxy(o: TinyproxyOptions = {}): Promise<Tinyproxy> {
  requireCommand("tinyproxy", "tinyproxy");
  const dir = mkdtempSync(join(tmpdir(), "nj-tinyproxy-"));
  // tinyproxy may drop to another user; its log must stay writable.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const log = join(dir, "tinyproxy.log");
  const conf = join(dir, "tinyproxy.conf");
  writeFileSync(
    conf,
    [
      `Port ${port}`,
      "Listen 127.0.0.1",
      "Timeout 30",
      `LogFile "${log}"`,
      "LogLevel Connect",
      "MaxClients 50",
      "Allow 127.0.0.1",
      // No ConnectPort line: CONNECT to any port (the CAs listen on random ones).
      ...(o.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
      ...(o.basicAuth ? [`BasicAuth ${o.basicAuth.user} ${o.basicAuth.password}`] : []),
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("tinyproxy", ["-d", "-c", conf], { stdio: "ignore" });
  await waitListening("tinyproxy", port, child);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: () => {
      let text: string;
      try {
        text = readFileSync(log, "utf8");
      } catch {
        return [];
      }
      return [...text.matchAll(/Request \(file descriptor \d+\): (\S+ \S+) HTTP\/1\.[01]$/gm)].map(
        (m) => m[1]!,
      );
    },
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
