// A small HTTP proxy in front of a real CA, for tests that need the CA to fail in a precise way
// (stop answering after its certificate was fetched, or answer something hostile).
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, request as httpsRequest } from "node:https";

export type ProxyAction =
  | { type: "forward" }
  /** Close the client connection without an answer (what a CA that went down looks like). */
  | { type: "drop" }
  | { type: "respond"; status: number; body: string | Buffer; headers?: Record<string, string> }
  /** Forward, then let the test rewrite the upstream answer. */
  | {
      type: "rewrite";
      rewrite: (
        status: number,
        body: string,
      ) => { status: number; body: string } | Promise<{ status: number; body: string }>;
    }
  /** Send the status line, headers and `partial`, then never finish the body. */
  | { type: "stall"; status?: number; partial?: string; headers?: Record<string, string> }
  /**
   * Stream `total` bytes of a JSON-looking body (chunked, or with its content-length), recording
   * how much the client took.
   */
  | { type: "stream"; total: number; contentLength?: boolean };

export interface StreamRecord {
  path: string;
  total: number;
  /** Bytes written before the client went away (or all of them). */
  sent: number;
  /** The client closed the connection before the whole body was written. */
  closedEarly: boolean;
  /** Milliseconds from the first byte to the close or the end. */
  ms: number;
  done: Promise<void>;
}

export interface ProxyOptions {
  /** Terminate TLS with this certificate (https proxy). */
  tls?: { cert: string; key: string };
}

export interface Proxy {
  url: string;
  requests: { method: string; path: string; body: string }[];
  streams: StreamRecord[];
  close(): Promise<void>;
}

export async function startProxy(
  upstream: string,
  decide: (path: string, body: string) => ProxyAction | Promise<ProxyAction>,
  opts: ProxyOptions = {},
): Promise<Proxy> {
  const requests: Proxy["requests"] = [];
  const streams: StreamRecord[] = [];
  const target = new URL(upstream);
  const upstreamRequest = target.protocol === "https:" ? httpsRequest : httpRequest;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
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
      if (action.type === "stall") {
        res.writeHead(action.status ?? 200, {
          "content-type": "application/json",
          ...action.headers,
        });
        res.write(action.partial ?? '{"success":true,"result":{"certificate":"');
        return;
      }
      if (action.type === "stream") {
        const rec = {
          path: req.url ?? "",
          total: action.total,
          sent: 0,
          closedEarly: false,
          ms: 0,
        } as StreamRecord;
        streams.push(rec);
        rec.done = streamBody(res, action, rec);
        return;
      }
      const up = upstreamRequest(
        {
          host: target.hostname,
          port: target.port,
          path: req.url,
          method: req.method,
          headers: { ...req.headers, host: target.host },
          rejectUnauthorized: false,
        },
        (ur) => {
          const parts: Buffer[] = [];
          ur.on("data", (c: Buffer) => parts.push(c));
          ur.on("end", async () => {
            let status = ur.statusCode ?? 502;
            let text = Buffer.concat(parts).toString();
            if (action.type === "rewrite")
              ({ status, body: text } = await action.rewrite(status, text));
            res.writeHead(status, { "content-type": "application/json" });
            res.end(text);
          });
        },
      );
      up.on("error", () => req.socket.destroy());
      up.end(body);
    });
  };
  const server: Server = opts.tls
    ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler)
    : createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`,
    requests,
    streams,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function streamBody(
  res: ServerResponse,
  action: { total: number; contentLength?: boolean },
  rec: StreamRecord,
): Promise<void> {
  const t0 = Date.now();
  res.writeHead(200, {
    "content-type": "application/json",
    ...(action.contentLength ? { "content-length": String(action.total) } : {}),
  });
  const head = Buffer.from('{"success":true,"result":{"certificate":"');
  const filler = Buffer.alloc(64 * 1024, "A");
  let closed = false;
  res.on("close", () => (closed = true));
  let left = action.total;
  const write = (b: Buffer): Promise<void> =>
    new Promise((resolve) => {
      if (res.write(b)) resolve();
      else {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      }
    });
  await write(head);
  rec.sent += head.length;
  left -= head.length;
  while (left > 0 && !closed && !res.destroyed) {
    const b = left >= filler.length ? filler : filler.subarray(0, left);
    await write(b);
    if (closed || res.destroyed) break;
    rec.sent += b.length;
    left -= b.length;
  }
  rec.closedEarly = left > 0;
  if (!rec.closedEarly) res.end();
  rec.ms = Date.now() - t0;
}
