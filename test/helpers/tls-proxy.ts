// A TLS-terminating reverse proxy in front of a test step-ca, as a layer-7 load balancer is: a real
// nginx (Debian's nginx-light) that ends the node's TLS session with a certificate of its own
// (issued by a CA of its own, given to node-join as --ca-tls-file), asks for no client
// certificate (no ssl_verify_client), and forwards each HTTP request to step-ca over a new TLS
// connection without one (no proxy_ssl_certificate), verifying step-ca against its root. The node's
// certificate never reaches step-ca (smallstep/cli#701, #1344): mTLS renewal fails there, the
// token renewal (its Authorization header, passed through as nginx does by default) goes through.
import { ready, shared } from "./fixture.js";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, requireCommand } from "./cfssl.js";
import { waitListening } from "./listening.js";
import type { StepCaHandle } from "./stepca.js";

export interface TlsProxy {
  /** https://127.0.0.1:<port>: give it to node-join as the CA URL. */
  url: string;
  /** The CA of the proxy's own certificate: give it to node-join as --ca-tls-file. */
  tlsCaFile: string;
  /** "METHOD path" of every request forwarded, in order (nginx's access log). */
  readonly forwarded: string[];
  /**
   * `forwarded` once nginx logged every request it answered: it writes a line after the response
   * went out, so a client may see the answer first. Waits until the log holds at least `count`
   * lines (at most 5 s), then returns them.
   */
  forwardedAtLeast(count: number): Promise<string[]>;
  stop(): Promise<void>;
}

/**
 * The proxy's own CA and its serving certificate for 127.0.0.1 (openssl), in `dir`: not one from
 * the step-ca, whose provisioners' certificates node-join refuses as the CA server's (any enrolled
 * client holds one); the node is given `proxy-ca.crt` as --ca-tls-file.
 */
function serverCertificate(dir: string): { cert: string; key: string; caFile: string } {
  const f = (name: string) => join(dir, name);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  execFileSync("openssl", [
    ...["req", "-x509", ...ec, "-keyout", f("proxy-ca.key"), "-out", f("proxy-ca.crt")],
    ...["-days", "2", "-subj", "/CN=node-join test proxy CA"],
    ...["-addext", "basicConstraints=critical,CA:TRUE"],
    ...["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
  ]);
  execFileSync("openssl", [
    ...["req", "-new", ...ec, "-keyout", f("proxy.key"), "-out", f("proxy.csr")],
    ...["-subj", "/CN=127.0.0.1"],
  ]);
  writeFileSync(
    f("proxy.ext"),
    "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
  );
  execFileSync("openssl", [
    ...["x509", "-req", "-in", f("proxy.csr"), "-CA", f("proxy-ca.crt")],
    ...["-CAkey", f("proxy-ca.key"), "-CAcreateserial", "-days", "1"],
    ...["-extfile", f("proxy.ext"), "-out", f("proxy.crt")],
  ]);
  return {
    cert: readFileSync(f("proxy.crt"), "utf8"),
    key: readFileSync(f("proxy.key"), "utf8"),
    caFile: f("proxy-ca.crt"),
  };
}

/** nginx.conf for one TLS server on 127.0.0.1:<port> proxying to step-ca; every path in `dir`. */
function nginxConf(o: { dir: string; port: number; upstream: string; asRoot: boolean }): string {
  const f = (name: string) => join(o.dir, name);
  return [
    // As root nginx would run its worker as nobody, which cannot use the 0700 temp dir.
    ...(o.asRoot ? ["user root;"] : []),
    "worker_processes 1;",
    "daemon off;",
    `pid ${f("nginx.pid")};`,
    `error_log ${f("error.log")} info;`,
    "events { worker_connections 64; }",
    "http {",
    "  log_format forwarded '$request_method $request_uri';",
    `  access_log ${f("access.log")} forwarded;`,
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map(
      (t) => `  ${t}_temp_path ${f(`${t}_temp`)};`,
    ),
    "  server {",
    `    listen 127.0.0.1:${o.port} ssl;`,
    `    ssl_certificate ${f("proxy.crt")};`,
    `    ssl_certificate_key ${f("proxy.key")};`,
    "    location / {",
    `      proxy_pass ${o.upstream};`,
    // step-ca's certificate has SANs DNS:localhost and IP:127.0.0.1; nginx checks the name with
    // X509_check_host, a DNS name, so it verifies "localhost".
    `      proxy_ssl_trusted_certificate ${f("upstream-roots.pem")};`,
    "      proxy_ssl_verify on;",
    "      proxy_ssl_verify_depth 2;",
    "      proxy_ssl_server_name on;",
    "      proxy_ssl_name localhost;",
    // step-ca sees its own address as Host, as behind the Node proxy this replaced.
    "      proxy_set_header Host $proxy_host;",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");
}

export async function startTlsProxy(ca: StepCaHandle): Promise<TlsProxy> {
  requireCommand("nginx", "nginx-light");
  const dir = mkdtempSync(join(tmpdir(), "nj-nginx-"));
  const { caFile } = serverCertificate(dir);
  writeFileSync(join(dir, "upstream-roots.pem"), ca.trustPem ?? ca.rootPem);
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  const asRoot = process.getuid?.() === 0;
  writeFileSync(conf, nginxConf({ dir, port, upstream: ca.url, asRoot }));
  const errorLog = join(dir, "error.log");
  const accessLog = join(dir, "access.log");
  writeFileSync(accessLog, "");
  // -e: the error log before the config is read (the build's default is stderr).
  const child: ChildProcess = spawn("nginx", ["-p", dir, "-c", conf, "-e", errorLog], {
    stdio: ["ignore", "ignore", openSync(join(dir, "stderr.log"), "a")],
  });
  // nginx reports a failed start in its error log, and on stderr before it opened that.
  const tail = () => {
    const text = ["error.log", "stderr.log"]
      .map((f) => {
        try {
          return readFileSync(join(dir, f), "utf8").trim();
        } catch {
          return "";
        }
      })
      .find(Boolean);
    return text ? `: ${text.split("\n").slice(-5).join(" | ")}` : "";
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      // SIGTERM: fast shutdown, open connections closed; the master exits after its worker.
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitListening("nginx", port, child, tail);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `https://127.0.0.1:${port}`,
    tlsCaFile: caFile,
    // nginx writes each access log line when the request ends, unbuffered (no buffer= on
    // access_log): just after the response went out (forwardedAtLeast waits for it).
    get forwarded() {
      return readFileSync(accessLog, "utf8").split("\n").filter(Boolean);
    },
    async forwardedAtLeast(count: number) {
      const lines = () => readFileSync(accessLog, "utf8").split("\n").filter(Boolean);
      for (let waited = 0; lines().length < count && waited < 5000; waited += 50)
        await new Promise((r) => setTimeout(r, 50));
      return lines();
    },
    stop,
  };
}

/** A TLS-terminating proxy in front of `ca` for the whole test file (after `ca` is up). */
export function useTlsProxy(ca: StepCaHandle): TlsProxy {
  return shared(
    async () => startTlsProxy(await ready(ca)),
    (proxy) => proxy.stop(),
  );
}
