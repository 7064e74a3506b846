import { test } from "node:test";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { verifyIssued, mismatch } from "../../agent/pki/verify.js";
import { VerificationError } from "../../agent/common/errors.js";
import { parseCert, EKU_OIDS } from "../../agent/pki/x509.js";
import type { CertTemplate } from "../../agent/pki/certs.js";
import { issueLeaf, makeCa } from "../helpers/pki.js";

const template: CertTemplate = {
  commonName: "system:node:w1",
  organizations: ["system:nodes"],
  sans: { dnsNames: ["w1"], ips: ["10.0.0.21"] },
  usages: ["serverAuth"],
};

async function setup() {
  const ca = await makeCa("kubernetes");
  const other = await makeCa("kubernetes");
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const spki = Buffer.from(await webcrypto.subtle.exportKey("spki", keys.publicKey));
  const good = {
    publicKey: keys.publicKey,
    cn: "system:node:w1",
    o: ["system:nodes"],
    dns: ["w1"],
    ips: ["10.0.0.21"],
    ekus: [EKU_OIDS.serverAuth],
  };
  const check = (chainPem: string, anchors = [parseCert(ca.pem)]) =>
    verifyIssued({
      kind: "kubelet-server",
      ca: "CA kubernetes",
      chainPem,
      expectedSpki: spki,
      anchors,
      template,
      now: new Date(),
    });
  return { ca, other, keys, good, check };
}

test("a certificate that matches the request verifies; extra SANs and O from the CA are allowed", async () => {
  const { ca, good, check } = await setup();
  const r = check(
    await issueLeaf(ca, { ...good, o: ["system:nodes", "extra"], dns: ["w1", "more"] }),
  );
  assert.equal(r.leaf.commonName, "system:node:w1");
  assert.equal(r.chain.length, 1);
});

test("intermediates in the answer are allowed and kept in the chain", async () => {
  const { ca, good, check } = await setup();
  const inter = await makeCa("intermediate", ca);
  const leaf = await issueLeaf(inter, good);
  const r = check(leaf + inter.pem);
  assert.deepEqual(
    r.chain.map((c) => c.commonName),
    ["system:node:w1", "intermediate"],
  );
  assert.throws(() => check(leaf), /does not chain to the pinned CA/);
});

const failures: [string, (s: Awaited<ReturnType<typeof setup>>) => Promise<string>, RegExp][] = [
  [
    "different public key",
    async (s) => {
      const other = (await webcrypto.subtle.generateKey(
        { name: "ECDSA", namedCurve: "P-256" },
        true,
        ["sign", "verify"],
      )) as CryptoKeyPair;
      return issueLeaf(s.ca, { ...s.good, publicKey: other.publicKey });
    },
    /different public key/,
  ],
  [
    "signed by another CA",
    async (s) => issueLeaf(s.other, s.good),
    /does not chain to the pinned CA/,
  ],
  [
    "wrong CN",
    async (s) => issueLeaf(s.ca, { ...s.good, cn: "system:node:w2" }),
    /CN is "system:node:w2", expected "system:node:w1"/,
  ],
  [
    "O dropped",
    async (s) => issueLeaf(s.ca, { ...s.good, o: [] }),
    /subject O lacks "system:nodes"/,
  ],
  [
    "SAN dropped",
    async (s) => issueLeaf(s.ca, { ...s.good, ips: [] }),
    /SANs lack requested 10\.0\.0\.21/,
  ],
  [
    "EKU missing",
    async (s) => issueLeaf(s.ca, { ...s.good, ekus: [EKU_OIDS.clientAuth] }),
    /extended key usage lacks serverAuth/,
  ],
  [
    "expired",
    async (s) =>
      issueLeaf(s.ca, {
        ...s.good,
        notBefore: new Date(Date.now() - 7200_000),
        notAfter: new Date(Date.now() - 3600_000),
      }),
    /expired at/,
  ],
  [
    "not yet valid",
    async (s) => issueLeaf(s.ca, { ...s.good, notBefore: new Date(Date.now() + 86400_000) }),
    /not valid before/,
  ],
  [
    "CA certificate as leaf",
    async (s) => issueLeaf(s.ca, { ...s.good, isCa: true }),
    /is a CA certificate/,
  ],
  [
    "garbage",
    async () => "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    /not a valid certificate/,
  ],
  ["no PEM at all", async () => "hello", /not a valid certificate/],
];

for (const [name, make, pattern] of failures) {
  test(`verification refuses: ${name}`, async () => {
    const s = await setup();
    const pem = await make(s);
    assert.throws(
      () => s.check(pem),
      (err: unknown) =>
        err instanceof VerificationError &&
        err.exitCode === 5 &&
        pattern.test(err.message) &&
        /kubelet-server/.test(err.message),
    );
  });
}

test("mismatch() is the template check renewal and idempotent join rely on", async () => {
  const s = await setup();
  const cert = parseCert(await issueLeaf(s.ca, s.good));
  const anchors = [parseCert(s.ca.pem)];
  assert.equal(mismatch(cert, template, anchors, new Date()), undefined);
  assert.match(
    mismatch(
      cert,
      { ...template, sans: { dnsNames: ["w1"], ips: ["10.0.0.99"] } },
      anchors,
      new Date(),
    ) ?? "",
    /SANs lack 10\.0\.0\.99/,
  );
  assert.match(
    mismatch(cert, template, [parseCert(s.other.pem)], new Date()) ?? "",
    /does not chain/,
  );
  assert.match(
    mismatch(cert, template, anchors, new Date(Date.now() + 2 * 365 * 86400_000)) ?? "",
    /expired/,
  );
});
