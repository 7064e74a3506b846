// Waits until a server process started by a test helper accepts TCP connections on loopback; a
// port where nothing listens yet, and a forwarder that brings a server up there.
import type { ChildProcess } from "node:child_process";
import { connect, createServer } from "node:net";

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

/** A loopback port nothing listens on (yet): a CA, or the network to it, not up. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * The CA coming up at an address that refused connections before: a TCP forwarder from the
 * loopback `port` to `url`'s host and port. Resolves to what stops it.
 */
export async function forward(port: number, url: string): Promise<() => Promise<void>> {
  const to = new URL(url);
  const srv = createServer((c) => {
    const s = connect(Number(to.port), to.hostname);
    c.pipe(s).pipe(c);
    s.on("error", () => c.destroy());
    c.on("error", () => s.destroy());
  });
  await new Promise<void>((r) => srv.listen(port, "127.0.0.1", r));
  return () => new Promise((r) => srv.close(() => r()));
}
