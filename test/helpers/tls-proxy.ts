// A TLS-terminating reverse proxy in front of a test step-ca, as a layer-7 load balancer is: a real
// nginx (Debian's nginx-light) that ends the node's TLS session with a certificate of its own
// (issued by the step-ca, so the node's trust in the root covers it), asks for no client
// certificate (no ssl_verify_client), and forwards each HTTP request to step-ca over a new TLS
// connection without one (no proxy_ssl_certificate), verifying step-ca against its root. The node's
// certificate never reaches step-ca (smallstep/cli#701, #1344): mTLS renewal fails there, the
// token renewal (its Authorization header, passed through as nginx does by default) goes through.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, requireCommand } from "./cfssl.js";
import { waitListening } from "./listening.js";
import { stepCaRequest, type StepCaHandle } from "./stepca.js";

export interface TlsProxy {
  /** https://127.0.0.1:<port>: give it to node-join as the CA URL. */
  url: string;
  /** "METHOD path" of every request forwarded, in order (nginx's access log). */
  readonly forwarded: string[];
  stop(): Promise<void>;
}

/** A serving certificate for 127.0.0.1 from the CA's first provisioner (a CSR and a token). */
async function serverCertificate(ca: StepCaHandle): Promise<{ cert: string; key: string }> {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const key = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const keyFile = join(ca.dir, `proxy-${process.pid}.key`);
  writeFileSync(keyFile, key, { mode: 0o600 });
  const csr = execFileSync("openssl", [
    "req",
    "-new",
    "-key",
    keyFile,
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ]).toString();
  const ott = await ca.mintToken(ca.provisioners[0]!.name, "127.0.0.1", ["127.0.0.1"]);
  const r = await stepCaRequest(ca, "/1.0/sign", { body: { csr, ott } });
  if (r.status !== 201) throw new Error(`proxy certificate: HTTP ${r.status}: ${r.body}`);
  return { cert: r.json.certChain.join(""), key };
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
  const { cert, key } = await serverCertificate(ca);
  const dir = mkdtempSync(join(tmpdir(), "nj-nginx-"));
  writeFileSync(join(dir, "proxy.crt"), cert);
  writeFileSync(join(dir, "proxy.key"), key, { mode: 0o600 });
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
    // nginx writes each access log line when the request ends, unbuffered (no buffer= on
    // access_log): the file holds every request answered so far.
    get forwarded() {
      return readFileSync(accessLog, "utf8").split("\n").filter(Boolean);
    },
    stop,
  };
}
