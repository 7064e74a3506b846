// Waits until a server process started by a test helper accepts TCP connections on loopback.
import type { ChildProcess } from "node:child_process";
import { connect } from "node:net";

/** Polls 127.0.0.1:<port> every 50 ms for 5 s; fails as soon as the child exits. */
export async function waitListening(
  name: string,
  port: number,
  child: ChildProcess,
  why: () => string = () => "",
): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}${why()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${name} did not listen on 127.0.0.1:${port}${why()}`);
}
