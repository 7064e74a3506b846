// The CONNECT tunnel through an HTTP proxy (RFC 9110 9.3.6): a TCP connection to the proxy, a
// CONNECT request for the CA's host:port, and on a 2xx answer the same socket handed to undici's
// TLS connector, so the TLS session is end to end with the CA. The proxy's answer is read here
// byte by byte up to its blank line and no further: anything after it belongs to the tunnel.
import type { Socket } from "node:net";
import { net } from "../common/builtins.js";
import type { ProxyRoute } from "./proxy.js";

/** The proxy answered CONNECT (or an absolute-form request) itself, with this status. */
export class ProxyAnswerError extends Error {
  constructor(
    readonly status: number,
    readonly statusText: string,
    /** What was asked: "CONNECT ca.example:9000". */
    readonly target: string,
  ) {
    super(`proxy answered HTTP ${status} ${statusText} to ${target}`);
  }
}

/** The options undici passes a connector (lib/core/connect.js), the part used here. */
interface ConnectOptions {
  hostname: string;
  host?: string;
  protocol: string;
  port: string;
  servername?: string;
  httpSocket?: Socket;
}
type Callback = (err: Error | null, socket: Socket | null) => void;
export type Connector = (opts: ConnectOptions, cb: Callback) => unknown;

/** An answer head longer than this is no proxy's CONNECT answer. */
const MAX_HEAD_BYTES = 16 * 1024;

/** The authority-form target of CONNECT (RFC 9112 3.2.3): host:port, an IPv6 host in brackets. */
export function connectTarget(hostname: string, port: string, protocol: string): string {
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  return `${host}:${port || (protocol === "https:" ? "443" : "80")}`;
}

/**
 * The head of the proxy's answer to CONNECT: its status and reason, and whether more bytes came
 * with it (a tunnel carries nothing before our TLS ClientHello is answered, so bytes here are a
 * body: the proxy answered itself). Undefined while the blank line has not arrived.
 */
export function parseConnectAnswer(
  buf: Buffer,
): { status: number; statusText: string; extra: boolean; bodyDeclared: boolean } | undefined {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const head = buf.subarray(0, end).toString("latin1");
  const [statusLine = "", ...fields] = head.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  const length = fields
    .map((f) => /^content-length:\s*(\d+)\s*$/i.exec(f)?.[1])
    .find((v) => v !== undefined);
  return {
    status: m ? Number(m[1]) : 0,
    statusText: m?.[2] ?? statusLine.slice(0, 60),
    extra: buf.length > end + 4,
    bodyDeclared: length !== undefined && Number(length) > 0,
  };
}

/**
 * A connector for undici's Agent that reaches https:// origins through `route` and then runs
 * `tlsConnect` (undici's buildConnector with the request's TLS options) over the tunnel.
 */
export function tunnelConnector(
  route: ProxyRoute,
  tlsConnect: Connector,
  timeoutMs: number,
): Connector {
  return (opts, cb) => {
    const target = connectTarget(opts.hostname, opts.port, opts.protocol);
    const socket = net().connect({ host: route.host, port: route.port });
    let done = false;
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", finish);
      socket.off("end", onEnd);
      if (err) {
        socket.destroy();
        cb(err, null);
        return;
      }
      tlsConnect({ ...opts, httpSocket: socket }, cb);
    };
    const timer = setTimeout(
      () =>
        finish(new Error(`no answer to CONNECT ${target} within ${Math.round(timeoutMs / 1000)}s`)),
      timeoutMs,
    );
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const a = parseConnectAnswer(buf);
      if (!a) {
        if (buf.length > MAX_HEAD_BYTES)
          finish(new ProxyAnswerError(0, "answer too long", `CONNECT ${target}`));
        return;
      }
      const ok = a.status >= 200 && a.status < 300 && !a.extra && !a.bodyDeclared;
      // A 2xx with a body is refused as an answer too (ProxyAnswerError's 2xx: see http.ts).
      finish(ok ? null : new ProxyAnswerError(a.status, a.statusText, `CONNECT ${target}`));
    };
    const onEnd = (): void =>
      finish(Object.assign(new Error("proxy closed the connection"), { code: "ECONNRESET" }));
    socket.on("data", onData);
    socket.on("error", finish);
    socket.on("end", onEnd);
    socket.once("connect", () => {
      const auth = route.authorization ? `Proxy-Authorization: ${route.authorization}\r\n` : "";
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
    });
  };
}
