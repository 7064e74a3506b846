// End-to-end checks of the real step-ca harness (test/helpers/stepca.ts):
// pinned root download, /1.0/sign with a one-time token, subject/SAN/usage
// policy of the provisioner templates, chain verification with openssl,
// /1.0/rekey over mTLS, token reuse, and renewal after expiry.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, webcrypto, X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startStepCa, stepCaLog, stepCaRequest, type StepCaHandle } from "../helpers/stepca.js";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

interface KeyAndCsr {
  keyPem: string;
  publicDer: Buffer;
  csrPem: string;
}

async function keyAndCsr(
  subject: string,
  sans: { dns?: string[]; ip?: string[] },
): Promise<KeyAndCsr> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const names: x509.JsonGeneralName[] = [
    ...(sans.dns ?? []).map((v) => ({ type: "dns" as const, value: v })),
    ...(sans.ip ?? []).map((v) => ({ type: "ip" as const, value: v })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    keys,
    signingAlgorithm: EC,
    extensions: names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const spki = Buffer.from(await webcrypto.subtle.exportKey("spki", keys.publicKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END PRIVATE KEY-----\n`;
  return { keyPem, publicDer: spki, csrPem: csr.toString("pem") };
}

function spkiOf(pem: string): Buffer {
  return new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
}

function subjectOf(pem: string): string[] {
  return new X509Certificate(pem).subject.split("\n").sort();
}

function run(file: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(file, args, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === "number"
          ? (err as unknown as { code: number }).code
          : 1
        : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

describe("step-ca harness (real step-ca 0.19)", () => {
  let ca: StepCaHandle;
  let work: string;

  before(async () => {
    const t0 = Date.now();
    ca = await startStepCa();
    const ms = Date.now() - t0;
    work = await mkdtemp(join(tmpdir(), "stepca-harness-test-"));
    // The first run in a fresh checkout includes the ~1 min Go build; later ones must be quick.
    console.log(`# step-ca started in ${ms} ms at ${ca.url} (dir ${ca.dir})`);
  });

  after(async () => {
    await ca?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("handle shape", () => {
    assert.match(ca.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(ca.localhostUrl, `https://localhost:${ca.port}`);
    assert.equal(
      ca.rootFingerprint,
      createHash("sha256").update(new X509Certificate(ca.rootPem).raw).digest("hex"),
    );
    assert.deepEqual(
      ca.provisioners.map((p) => p.name),
      ["workers", "control-plane"],
    );
    for (const p of ca.provisioners) {
      assert.match(p.kid, /^[A-Za-z0-9_-]{43}$/);
      assert.ok(p.password.length >= 16);
    }
    assert.ok(ca.pid && ca.pid > 0);
  });

  test("GET /root/<fingerprint> returns the pinned root; unknown fingerprint is 404", async () => {
    // Pinning as `step ca bootstrap` does: fetch without verification, check the hash.
    const r = await stepCaRequest(ca, `/root/${ca.rootFingerprint}`, { insecure: true });
    assert.equal(r.status, 200, r.body);
    const got = new X509Certificate(r.json.ca);
    assert.equal(createHash("sha256").update(got.raw).digest("hex"), ca.rootFingerprint);
    assert.equal(got.ca, true);
    const miss = await stepCaRequest(ca, `/root/${"0".repeat(64)}`);
    assert.equal(miss.status, 404, miss.body);
    // The same server answers on localhost (its certificate has DNS:localhost).
    const h = await stepCaRequest(ca, "/health", { baseUrl: ca.localhostUrl });
    assert.equal(h.status, 200);
  });

  test("sign with a one-time token, rekey over mTLS, reused token refused", async () => {
    // The CSR asks for system:masters: the workers template must override it.
    const w1 = await keyAndCsr("CN=system:node:w1, O=system:masters", {
      dns: ["w1"],
      ip: ["10.0.0.5"],
    });
    const ott = await ca.mintToken("workers", "system:node:w1", ["w1", "10.0.0.5"]);
    const [h, c] = ott
      .split(".")
      .slice(0, 2)
      .map((s) => JSON.parse(Buffer.from(s!, "base64url").toString()));
    assert.equal(h.alg, "ES256");
    assert.equal(h.kid, ca.provisioners[0]!.kid);
    assert.deepEqual(c.aud, [`${ca.url}/1.0/sign`]);
    assert.equal(c.iss, "workers");
    assert.equal(c.sha, ca.rootFingerprint);
    assert.equal(c.exp - c.iat, 300);

    const signed = await stepCaRequest(ca, "/1.0/sign", { body: { csr: w1.csrPem, ott } });
    assert.equal(signed.status, 201, `${signed.body}\n${stepCaLog(ca)}`);
    const leafPem: string = signed.json.crt;
    const leaf = new X509Certificate(leafPem);
    assert.deepEqual(subjectOf(leafPem), ["CN=system:node:w1", "O=system:nodes"]);
    assert.equal(leaf.subjectAltName, "DNS:w1, IP Address:10.0.0.5");
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    assert.deepEqual(spkiOf(leafPem), w1.publicDer);
    const life = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
    assert.ok(
      Math.abs(life - (24 * 3600 + 60) * 1000) <= 2000,
      `default 24h (+1m backdate), got ${life} ms`,
    );
    const pl = new x509.X509Certificate(leafPem);
    const ku = pl.getExtension(x509.KeyUsagesExtension);
    assert.ok(ku, "keyUsage extension");
    assert.equal(
      ku.usages,
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );

    // Chain: leaf <- intermediate <- root.
    assert.equal(signed.json.certChain.length, 2);
    assert.equal(
      new X509Certificate(signed.json.certChain[1]).fingerprint256,
      new X509Certificate(ca.intermediatePem).fingerprint256,
    );
    assert.equal(
      new X509Certificate(signed.json.ca).fingerprint256,
      new X509Certificate(ca.intermediatePem).fingerprint256,
    );
    const leafFile = join(work, "w1.crt");
    await writeFile(leafFile, leafPem);
    const ok = await run("openssl", [
      "verify",
      "-CAfile",
      ca.rootFile,
      "-untrusted",
      ca.intermediateFile,
      leafFile,
    ]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /: OK/);
    const bad = await run("openssl", ["verify", "-CAfile", ca.rootFile, leafFile]);
    assert.notEqual(bad.code, 0, `openssl verify must fail without the intermediate: ${bad.out}`);

    // The same token again: one-time, refused with a generic 401.
    const again = await stepCaRequest(ca, "/1.0/sign", { body: { csr: w1.csrPem, ott } });
    assert.equal(again.status, 401, again.body);
    assert.match(stepCaLog(ca), /token already used/);

    // Rekey over mTLS with the issued certificate: new key, same identity.
    const w1b = await keyAndCsr("CN=system:node:w1", { dns: ["w1"], ip: ["10.0.0.5"] });
    const rekey = await stepCaRequest(ca, "/1.0/rekey", {
      body: { csr: w1b.csrPem },
      cert: leafPem + ca.intermediatePem,
      key: w1.keyPem,
    });
    assert.equal(rekey.status, 201, rekey.body);
    const rk: string = rekey.json.crt;
    assert.deepEqual(spkiOf(rk), w1b.publicDer);
    assert.notDeepEqual(spkiOf(rk), w1.publicDer);
    assert.deepEqual(subjectOf(rk), ["CN=system:node:w1", "O=system:nodes"]);
    assert.equal(new X509Certificate(rk).subjectAltName, "DNS:w1, IP Address:10.0.0.5");
    assert.notEqual(new X509Certificate(rk).serialNumber, leaf.serialNumber);

    // Renew (same key) with the rekeyed certificate.
    const renew = await stepCaRequest(ca, "/1.0/renew", {
      method: "POST",
      cert: rk,
      key: w1b.keyPem,
    });
    assert.equal(renew.status, 201, renew.body);
    assert.deepEqual(spkiOf(renew.json.crt), w1b.publicDer);

    // Rekey without a client certificate is refused.
    const anon = await stepCaRequest(ca, "/1.0/rekey", { body: { csr: w1b.csrPem } });
    assert.equal(anon.status, 400, anon.body);
  });

  test("token/CSR mismatches are refused", async () => {
    const k = await keyAndCsr("CN=system:node:w2", { dns: ["w2"] });
    // CSR IP SANs differ from the token's: 403 with the reason.
    const kIp = await keyAndCsr("CN=system:node:w2", { dns: ["w2"], ip: ["10.0.0.7"] });
    const t1 = await ca.mintToken("workers", "system:node:w2", ["w2", "10.0.0.6"]);
    const r1 = await stepCaRequest(ca, "/1.0/sign", { body: { csr: kIp.csrPem, ott: t1 } });
    assert.equal(r1.status, 403, r1.body);
    assert.match(r1.json.message, /IP addresses/);
    // step-ca 0.19 checks only the SAN types present in the CSR; the template
    // issues the CSR's SANs, so the token's extra IP does not reach the cert.
    const t1b = await ca.mintToken("workers", "system:node:w2", ["w2", "10.0.0.6"]);
    const r1b = await stepCaRequest(ca, "/1.0/sign", { body: { csr: k.csrPem, ott: t1b } });
    assert.equal(r1b.status, 201, r1b.body);
    assert.equal(new X509Certificate(r1b.json.crt).subjectAltName, "DNS:w2");
    // CN differs from sub: 403.
    const t2 = await ca.mintToken("workers", "system:node:other", ["w2"]);
    const r2 = await stepCaRequest(ca, "/1.0/sign", { body: { csr: k.csrPem, ott: t2 } });
    assert.equal(r2.status, 403, r2.body);
    // Wrong audience: 401.
    const t3 = await ca.mintToken("workers", "system:node:w2", ["w2"], {
      audience: "https://elsewhere:9000/1.0/sign",
    });
    const r3 = await stepCaRequest(ca, "/1.0/sign", { body: { csr: k.csrPem, ott: t3 } });
    assert.equal(r3.status, 401, r3.body);
    // Below minTLSCertDuration (5m): 403.
    const t4 = await ca.mintToken("workers", "system:node:w2", ["w2"]);
    const r4 = await stepCaRequest(ca, "/1.0/sign", {
      body: { csr: k.csrPem, ott: t4, notAfter: "1m" },
    });
    assert.equal(r4.status, 403, r4.body);
  });

  test("control-plane provisioner keeps the CSR's O", async () => {
    const k = await keyAndCsr("CN=kube-apiserver-kubelet-client, O=kubeadm:cluster-admins", {});
    const t = await ca.mintToken("control-plane", "kube-apiserver-kubelet-client", []);
    const r = await stepCaRequest(ca, "/1.0/sign", {
      body: { csr: k.csrPem, ott: t, notAfter: "2h" },
    });
    assert.equal(r.status, 201, r.body);
    assert.deepEqual(subjectOf(r.json.crt), [
      "CN=kube-apiserver-kubelet-client",
      "O=kubeadm:cluster-admins",
    ]);
    const c = new X509Certificate(r.json.crt);
    assert.equal(
      c.subjectAltName,
      undefined,
      "no SAN in the CSR, none in the cert (not the CN as a SAN)",
    );
    assert.ok(Math.abs(Date.parse(c.validTo) - Date.now() - 2 * 3600_000) < 5000);
  });

  test("restart keeps the CA and refuses tokens minted before it", async () => {
    const before = await ca.mintToken("workers", "system:node:w3", ["w3"]);
    const pid = ca.pid;
    await new Promise((r) => setTimeout(r, 1100)); // iat has second precision
    await ca.restart();
    assert.notEqual(ca.pid, pid);
    const k = await keyAndCsr("CN=system:node:w3", { dns: ["w3"] });
    const r = await stepCaRequest(ca, "/1.0/sign", { body: { csr: k.csrPem, ott: before } });
    assert.equal(r.status, 401, r.body);
    assert.match(stepCaLog(ca), /token issued before the bootstrap of certificate authority/);
    const fresh = await ca.mintToken("workers", "system:node:w3", ["w3"]);
    const r2 = await stepCaRequest(ca, "/1.0/sign", { body: { csr: k.csrPem, ott: fresh } });
    assert.equal(r2.status, 201, r2.body);
  });
});

describe("renewal after expiry (allowRenewalAfterExpiry, 0.19)", () => {
  let ca: StepCaHandle;
  before(async () => {
    ca = await startStepCa({
      provisioners: [
        { name: "short", organization: ["system:nodes"], claims: { minTLSCertDuration: "1s" } },
        {
          name: "short-strict",
          organization: ["system:nodes"],
          claims: { minTLSCertDuration: "1s", allowRenewalAfterExpiry: false },
        },
      ],
    });
  });
  after(async () => ca?.stop());

  test("expired cert: mTLS refused at the handshake; Bearer x5cInsecure renew works only when allowed", async () => {
    const issue = async (prov: string) => {
      const k = await keyAndCsr("CN=system:node:e1", { dns: ["e1"] });
      const t = await ca.mintToken(prov, "system:node:e1", ["e1"]);
      const r = await stepCaRequest(ca, "/1.0/sign", {
        body: { csr: k.csrPem, ott: t, notAfter: "2s" },
      });
      assert.equal(r.status, 201, r.body);
      return { ...k, crt: r.json.crt as string };
    };
    const a = await issue("short");
    const b = await issue("short-strict");
    const expiry = Math.max(
      Date.parse(new X509Certificate(a.crt).validTo),
      Date.parse(new X509Certificate(b.crt).validTo),
    );
    await new Promise((r) => setTimeout(r, Math.max(0, expiry - Date.now()) + 1100));

    await assert.rejects(
      stepCaRequest(ca, "/1.0/renew", { method: "POST", cert: a.crt, key: a.keyPem }),
    );

    const ta = await ca.mintRenewToken(a.crt + ca.intermediatePem, a.keyPem);
    const ra = await stepCaRequest(ca, "/1.0/renew", {
      method: "POST",
      headers: { authorization: `Bearer ${ta}` },
    });
    assert.equal(ra.status, 201, ra.body);
    assert.deepEqual(spkiOf(ra.json.crt), a.publicDer);
    assert.ok(Date.parse(new X509Certificate(ra.json.crt).validTo) > Date.now());
    const again = await stepCaRequest(ca, "/1.0/renew", {
      method: "POST",
      headers: { authorization: `Bearer ${ta}` },
    });
    assert.equal(again.status, 401, "renew token is single use");

    const tb = await ca.mintRenewToken(b.crt + ca.intermediatePem, b.keyPem);
    const rb = await stepCaRequest(ca, "/1.0/renew", {
      method: "POST",
      headers: { authorization: `Bearer ${tb}` },
    });
    assert.equal(rb.status, 401, rb.body);
    assert.match(stepCaLog(ca), /certificate has expired/);
  });
});
