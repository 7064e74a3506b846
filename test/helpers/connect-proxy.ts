// Forward proxies that misbehave, for what no Debian package does simply: an intercepting proxy
// that answers CONNECT (RFC 9110 9.3.6) with 200 and then terminates TLS itself with its own
// self-signed certificate (forwarding what it decrypted to the real CA, as a TLS-inspecting
// middlebox does), and a captive portal that answers every request itself with a login page.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, TLSSocket } from "node:tls";

export interface MisbehavingProxy {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Request lines received ("CONNECT 127.0.0.1:9000", "POST http://..."). */
  requests: string[];
  close(): Promise<void>;
}

const PORTAL =
  "<html><head><title>Welcome to the guest network</title></head><body>Log in</body></html>";

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl. */
function selfSigned(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "nj-intercept-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=intercepting proxy",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      { stdio: "ignore" },
    );
    return {
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
      key: readFileSync(join(dir, "key.pem"), "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads one request head (up to the blank line) from a fresh connection. */
function readHead(sock: Socket, onHead: (head: string, rest: Buffer) => void): void {
  let buf = Buffer.alloc(0);
  const onData = (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    sock.off("data", onData);
    sock.pause();
    onHead(buf.subarray(0, end).toString("latin1"), buf.subarray(end + 4));
  };
  sock.on("data", onData);
  sock.on("error", () => undefined);
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  return typeof a === "object" && a ? a.port : 0;
}

function handle(server: Server, requests: string[], port: number): MisbehavingProxy {
  const sockets = new Set<Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * The intercepting proxy: CONNECT host:port is answered 200, then the client's TLS is terminated
 * with this proxy's own certificate and the decrypted bytes are relayed to host:port over a new TLS
 * connection (unverified, as such middleboxes do). Absolute-form requests are not supported.
 */
export async function startInterceptingProxy(): Promise<MisbehavingProxy> {
  const requests: string[] = [];
  const { cert, key } = selfSigned();
  const server = createServer((sock) => {
    readHead(sock, (head) => {
      const line = head.split("\r\n")[0]!;
      requests.push(line.replace(/ HTTP\/1\.[01]$/, ""));
      const m = /^CONNECT (\S+):(\d+) /.exec(line);
      if (!m) {
        sock.end("HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n");
        return;
      }
      sock.write("HTTP/1.1 200 Connection established\r\n\r\n");
      const inner = new TLSSocket(sock, { isServer: true, cert, key });
      inner.on("error", () => sock.destroy());
      const upstream = tlsConnect({
        host: m[1]!.replace(/^\[|\]$/g, ""),
        port: Number(m[2]),
        rejectUnauthorized: false,
      });
      upstream.on("error", () => inner.destroy());
      inner.pipe(upstream).pipe(inner);
      sock.resume();
    });
  });
  return handle(server, requests, await listen(server));
}

/**
 * The captive portal: it answers every request itself, 200 with its login page: CONNECT too (the
 * page right after the 200 head, where the tunnel would start), and absolute-form requests.
 */
export async function startCaptivePortal(): Promise<MisbehavingProxy> {
  const requests: string[] = [];
  const server = createServer((sock) => {
    readHead(sock, (head) => {
      const line = head.split("\r\n")[0]!;
      requests.push(line.replace(/ HTTP\/1\.[01]$/, ""));
      sock.end(
        `HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: ${PORTAL.length}\r\nconnection: close\r\n\r\n${PORTAL}`,
      );
    });
  });
  return handle(server, requests, await listen(server));
}

/**
 * A proxy that refuses every CONNECT with `statusLine` (e.g. "HTTP/1.1 403 <text>") and no body:
 * what a hostile or broken proxy can put in front of the operator's terminal.
 */
export async function startRefusingProxy(statusLine: string): Promise<MisbehavingProxy> {
  const requests: string[] = [];
  const server = createServer((sock) => {
    readHead(sock, (head) => {
      requests.push(head.split("\r\n")[0]!.replace(/ HTTP\/1\.[01]$/, ""));
      sock.end(Buffer.from(`${statusLine}\r\ncontent-length: 0\r\n\r\n`, "latin1"));
    });
  });
  return handle(server, requests, await listen(server));
}
