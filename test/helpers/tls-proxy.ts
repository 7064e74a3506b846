// A TLS-terminating reverse proxy in front of a test step-ca, as a layer-7 load balancer is: it
// ends the node's TLS session with a certificate of its own (issued by the step-ca, so the node's
// trust in the root covers it), asks for no client certificate, and forwards each HTTP request to
// step-ca over a new TLS connection without one. The node's certificate never reaches step-ca
// (smallstep/cli#701, #1344): mTLS renewal fails there, the token renewal goes through.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startProxy } from "./proxy.js";
import { stepCaRequest, type StepCaHandle } from "./stepca.js";

export interface TlsProxy {
  /** https://127.0.0.1:<port>: give it to node-join as the CA URL. */
  url: string;
  /** "METHOD path" of every request forwarded, in order. */
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

export async function startTlsProxy(ca: StepCaHandle): Promise<TlsProxy> {
  // test/helpers/proxy.ts forwards over a new TLS connection of its own, without a client
  // certificate: all this needs is a certificate the node trusts.
  const p = await startProxy(ca.url, () => ({ type: "forward" }), {
    tls: await serverCertificate(ca),
  });
  return {
    url: p.url,
    get forwarded() {
      return p.requests.map((r) => `${r.method} ${r.path}`);
    },
    stop: () => p.close(),
  };
}
