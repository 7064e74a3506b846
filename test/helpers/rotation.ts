// What the CA-rotation end-to-end tests share (test/e2e/ca-rotation*.test.ts): a new CA key made as
// the README's runbook makes it, PEM plumbing read with openssl, and a mutual TLS handshake between
// two certificates each side verifies against a bundle.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, type TLSSocket } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  cfsslControlPlaneCaFlags,
  controlPlaneNodeFlags,
  flags,
  type ClusterCas,
} from "../../scripts/lib/args.js";
import { installControlPlaneSecrets, startCfssl, type CfsslCa } from "./cfssl.js";
import { runCli } from "./cli.js";
export { saKeyDir } from "./sa-keys.js";
import { opensslInfo } from "./openssl.js";

/** A new key and self-signed certificate for the CA, made as the README's runbook makes it. */
export function newCaKey(cn: string): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "nj-newca-"));
  writeFileSync(
    join(dir, "csr.json"),
    JSON.stringify({ CN: cn, key: { algo: "ecdsa", size: 256 }, ca: { expiry: "87600h" } }),
  );
  execFileSync("sh", [
    "-c",
    `cd '${dir}' && cfssl gencert -initca csr.json 2>/dev/null | cfssljson -bare new-ca`,
  ]);
  return { cert: join(dir, "new-ca.pem"), key: join(dir, "new-ca-key.pem") };
}

/** A temp dir with a service-account key pair (sa.key, sa.pub) for control planes' joins. */

/** Three real CFSSL CAs (kubernetes, front-proxy-ca, etcd-ca), stopped by the test's `after`. */
export async function startClusterCas(started: CfsslCa[]): Promise<ClusterCas<CfsslCa>> {
  const [kubernetes, frontProxy, etcd] = await Promise.all(
    ["kubernetes", "front-proxy-ca", "etcd-ca"].map((cn) => startCfssl({ cn })),
  );
  started.push(kubernetes!, frontProxy!, etcd!);
  return { kubernetes: kubernetes!, frontProxy: frontProxy!, etcd: etcd! };
}

/** A control plane joined against the CFSSL CAs `cas`, with its secrets installed first. */
export async function joinControlPlane(
  n: { name: string; ip: string; root: string },
  cas: ClusterCas<CfsslCa>,
  saDir: string,
): Promise<void> {
  installControlPlaneSecrets(n.root, cas, saDir);
  const r = await runCli([
    "join",
    ...flags({
      root: n.root,
      ...controlPlaneNodeFlags(n.name, n.ip),
      ...cfsslControlPlaneCaFlags(cas, join(n.root, "etc/node-join")),
    }),
  ]);
  assert.equal(r.code, 0, `join ${n.name}: ${r.stderr}`);
}

/** Each certificate of a PEM text, in order, each ending in a newline. */
export const certsOf = (pem: string): string[] =>
  pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];

/** The private key of a PEM text that holds one. */
export const keyOf = (pem: string): string =>
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----\n/.exec(pem)![0];

/** `node-join trust add --root <root> --ca <ca> --ca-file <file>`. */
export const trustAdd = (root: string, ca: string, file: string) =>
  runCli(["trust", "add", "--root", root, "--ca", ca, "--ca-file", file]);

/** The issuer of a PEM's first certificate, as openssl prints it ("CN = kubernetes-2"). */
export const issuerOf = (pem: string): string =>
  execFileSync("openssl", ["x509", "-noout", "-issuer"], { input: certsOf(pem)[0]! })
    .toString()
    .trim()
    .replace(/^issuer=\s*/, "");

/** Each CA certificate of a bundle file, by its CN, in order. */
export const bundleCns = (file: string): string[] =>
  certsOf(readFileSync(file, "utf8")).map((c) => opensslInfo(c).cn);

/**
 * A mutual TLS handshake: a server with `serverPem` (cert and key) that verifies its client
 * against `clientCaFile`, a client with `clientPem` that verifies the server against
 * `serverCaFile` (default: the same file), as the API server checks a kubelet-client certificate
 * against ca.crt and a front-proxy client against front-proxy-ca.crt.
 */
export async function handshake(
  serverPem: string,
  clientPem: string,
  clientCaFile: string,
  serverCaFile = clientCaFile,
): Promise<void> {
  const server = createServer({
    cert: serverPem,
    key: keyOf(serverPem),
    ca: readFileSync(clientCaFile, "utf8"),
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.on("secureConnection", (s: TLSSocket) => s.end("ok"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    const answer = await new Promise<string>((resolve, reject) => {
      const c = connect({
        host: "127.0.0.1",
        port,
        cert: clientPem,
        key: keyOf(clientPem),
        ca: readFileSync(serverCaFile, "utf8"),
        // The serving certificates name the node (w1, 10.0.0.21), not 127.0.0.1.
        checkServerIdentity: () => undefined,
      });
      let data = "";
      c.on("data", (d: Buffer) => (data += d.toString()));
      c.on("end", () => resolve(data));
      c.on("error", reject);
    });
    assert.equal(answer, "ok");
  } finally {
    server.close();
  }
}
