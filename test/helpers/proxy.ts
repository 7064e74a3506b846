// A small HTTP proxy in front of a real CA, for tests that need the CA to fail in a precise way
// (stop answering after its certificate was fetched, or answer something hostile).
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export type ProxyAction =
  | { type: "forward" }
  /** Close the client connection without an answer (what a CA that went down looks like). */
  | { type: "drop" }
  | { type: "respond"; status: number; body: string | Buffer; headers?: Record<string, string> }
  /** Forward, then let the test rewrite the upstream answer. */
  | { type: "rewrite"; rewrite: (status: number, body: string) => { status: number; body: string } };

export interface Proxy {
  url: string;
  requests: { method: string; path: string; body: string }[];
  close(): Promise<void>;
}

export async function startProxy(upstream: string, decide: (path: string, body: string) => ProxyAction | Promise<ProxyAction>): Promise<Proxy> {
  const requests: Proxy["requests"] = [];
  const target = new URL(upstream);
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString();
      requests.push({ method: req.method ?? "", path: req.url ?? "", body });
      const action = await decide(req.url ?? "", body);
      if (action.type === "drop") {
        req.socket.destroy();
        return;
      }
      if (action.type === "respond") {
        res.writeHead(action.status, { "content-type": "application/json", ...action.headers });
        res.end(action.body);
        return;
      }
      const up = httpRequest(
        { host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, host: target.host } },
        (ur) => {
          const parts: Buffer[] = [];
          ur.on("data", (c: Buffer) => parts.push(c));
          ur.on("end", () => {
            let status = ur.statusCode ?? 502;
            let text = Buffer.concat(parts).toString();
            if (action.type === "rewrite") ({ status, body: text } = action.rewrite(status, text));
            res.writeHead(status, { "content-type": "application/json" });
            res.end(text);
          });
        },
      );
      up.on("error", () => req.socket.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
