import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import { buildCsr, parseCsr } from "../../agent/pki/csr.js";
import { buildSignerCsr } from "../../agent/pki/csr-signer.js";
import { findKind, templateFor, type TableContext } from "../../agent/pki/certs.js";
import { generateKey, KEY_ALGORITHMS, spkiDer, loadKey } from "../../agent/pki/keys.js";

const ctx: TableContext = {
  node: { nodeName: "w1", ips: ["10.0.0.21", "2001:db8::21"], dnsNames: ["w1.lab"] },
  apiServer: "https://api:6443",
};

test("kubelet client CSR: CN system:node:<name>, O system:nodes, no SANs, signed by our key", async () => {
  const key = await generateKey("ecdsa-p256");
  const pem = await buildCsr(templateFor(findKind("kubelet-client")!, ctx), key);
  const info = await parseCsr(pem);
  assert.equal(info.commonName, "system:node:w1");
  assert.deepEqual(info.organizations, ["system:nodes"]);
  assert.deepEqual([...info.dnsNames, ...info.ips], []);
  assert.ok(info.spki.equals(spkiDer(key.privateKey)));
  assert.equal(info.signatureValid, true);
  // openssl agrees that the request is well-formed and self-signed correctly
  const out = execFileSync("openssl", ["req", "-noout", "-verify", "-subject"], {
    input: pem,
    stdio: ["pipe", "pipe", "pipe"],
  }).toString();
  assert.match(out, /O\s*=\s*system:nodes, CN\s*=\s*system:node:w1/);
});

test("kubelet serving CSR carries node name, DNS names and IPs as SANs", async () => {
  const key = await generateKey("ecdsa-p256");
  const info = await parseCsr(await buildCsr(templateFor(findKind("kubelet-server")!, ctx), key));
  assert.deepEqual(info.dnsNames, ["w1", "w1.lab"]);
  assert.deepEqual(info.ips, ["10.0.0.21", "2001:db8::21"]);
});

test("every key algorithm yields a valid CSR and kubeadm's PEM key format", async () => {
  for (const alg of KEY_ALGORITHMS) {
    if (alg === "rsa-4096" || alg === "rsa-3072") continue; // slow; covered by the algorithm name mapping below
    const key = await generateKey(alg);
    assert.match(
      key.pem,
      alg.startsWith("rsa")
        ? /^-----BEGIN RSA PRIVATE KEY-----/
        : /^-----BEGIN EC PRIVATE KEY-----/,
    );
    assert.equal(loadKey(key.pem).algorithm, alg);
    const info = await parseCsr(await buildCsr(templateFor(findKind("kubelet-client")!, ctx), key));
    assert.equal(info.signatureValid, true, alg);
  }
});

test("rsa-3072 and rsa-4096 generate keys of that size", async () => {
  for (const alg of ["rsa-3072", "rsa-4096"] as const) {
    const key = await generateKey(alg);
    assert.equal(key.privateKey.asymmetricKeyDetails?.modulusLength, Number(alg.slice(4)));
  }
});

test("buildSignerCsr: a CSR signed outside node:crypto (the TPM) that openssl verifies, CN and DNS SANs", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const pem = await buildSignerCsr({
    commonName: "w1",
    dnsNames: ["w1"],
    spki: publicKey.export({ type: "spki", format: "der" }),
    sign: async (data) => sign("sha256", data, privateKey),
  });
  // openssl req -verify says so on stderr (and exits 0 either way in some versions).
  const verify = (csr: string) =>
    spawnSync("openssl", ["req", "-verify", "-noout", "-text"], { input: csr, encoding: "utf8" });
  const good = verify(pem);
  assert.match(good.stderr + good.stdout, /verify OK/);
  const out = good.stdout;
  assert.match(out, /Subject: CN ?= ?w1/);
  assert.match(out, /DNS:w1/);
  const wrong = await buildSignerCsr({
    commonName: "w1",
    dnsNames: [],
    spki: publicKey.export({ type: "spki", format: "der" }),
    sign: async (data) => sign("sha256", Buffer.concat([data, Buffer.from("x")]), privateKey),
  });
  const bad = verify(wrong);
  assert.doesNotMatch(bad.stderr + bad.stdout, /verify OK/);
  assert.match(bad.stderr + bad.stdout, /verify failure|signature/i);
});
