// A real software TPM 2.0 on loopback: Debian's swtpm (`swtpm socket`), one state directory per
// TPM, so a second one is a second machine (its own seeds: a key wrapped by one does not load in
// the other). Started with --flags not-need-init,startup-clear: the TPM is powered on and has run
// TPM2_Startup(CLEAR), as firmware leaves a real one; node-join's TCTI is then
// swtpm:host=127.0.0.1,port=P (libtss2-tcti-swtpm: commands on P, its control channel on P+1).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireCommand } from "./cfssl.js";
import { shared } from "./fixture.js";
import { freePort, waitListening } from "./listening.js";

export interface Swtpm {
  /** swtpm:host=127.0.0.1,port=P */
  tcti: string;
  port: number;
  stop(): Promise<void>;
}

const portFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });

/** Two consecutive free loopback ports: the swtpm TCTI finds the control channel at P+1. */
async function portPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freePort();
    if (p < 65535 && (await portFree(p + 1))) return p;
  }
  throw new Error("swtpm: no two consecutive free loopback ports");
}

export async function startSwtpm(): Promise<Swtpm> {
  requireCommand("swtpm", "swtpm");
  // tpm2-tools and the TCTI library node-join uses to reach it.
  requireCommand("tpm2_createprimary", "tpm2-tools");
  const dir = mkdtempSync(join(tmpdir(), "nj-swtpm-"));
  const port = await portPair();
  const args = [
    "socket",
    "--tpm2",
    "--tpmstate",
    `dir=${dir}`,
    "--server",
    `type=tcp,port=${port},bindaddr=127.0.0.1`,
    "--ctrl",
    `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
    "--flags",
    "not-need-init,startup-clear",
  ];
  let stderr = "";
  const child: ChildProcess = spawn("swtpm", args, { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  await waitListening("swtpm", port, child, () => (stderr ? `: ${stderr.trim()}` : ""));
  return {
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    port,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A swtpm for the whole test file: started before its tests, stopped after. */
export const useSwtpm = (): Swtpm => shared(startSwtpm, (t) => t.stop());
