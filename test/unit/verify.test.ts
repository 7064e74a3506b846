import { test } from "node:test";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { verifyAnswer, verifyIssued, mismatch, sanDifference } from "../../agent/pki/verify.js";
import { stepCaRequestedSans, stepCaSanSet } from "../../agent/ca/stepca/sans.js";
import { VerificationError } from "../../agent/common/errors.js";
import { parseCert, parseDn, EKU_OIDS, type CertInfo } from "../../agent/pki/x509.js";
import type { CertTemplate } from "../../agent/pki/certs.js";
import { issueLeaf, makeCa, type LeafOptions } from "../helpers/pki.js";

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
  const request = (chainPem: string, anchors = [parseCert(ca.pem)]) => ({
    kind: "kubelet-server",
    ca: "CA kubernetes",
    chainPem,
    expectedSpki: spki,
    anchors,
    template,
    now: new Date(),
  });
  const check = (chainPem: string, anchors?: CertInfo[]) =>
    verifyIssued(request(chainPem, anchors));
  /** The whole check of an answer: verifyIssued, then RFC 5280 path validation. */
  const verify = (chainPem: string) => verifyAnswer(request(chainPem));
  return { ca, other, keys, good, check, verify };
}

test("a certificate that matches the request exactly verifies", async () => {
  const { ca, good, check } = await setup();
  const r = check(await issueLeaf(ca, good));
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
    "an extra O (a node with cluster-admin rights)",
    async (s) => issueLeaf(s.ca, { ...s.good, o: ["system:nodes", "system:masters"] }),
    /subject O has unrequested "system:masters" \(expected \["system:nodes"\]\)/,
  ],
  [
    "a second CN (Go's crypto/x509 reads the last one)",
    async (s) => issueLeaf(s.ca, { ...s.good, extraCns: ["kubernetes-admin"] }),
    /subject has 2 CNs \["system:node:w1","kubernetes-admin"\], expected exactly one, "system:node:w1"/,
  ],
  [
    "extra SANs",
    async (s) =>
      issueLeaf(s.ca, {
        ...s.good,
        dns: ["w1", "kubernetes.default.svc", "*.evil.example"],
        ips: ["10.0.0.21", "10.96.0.1"],
      }),
    /SANs include unrequested kubernetes\.default\.svc, \*\.evil\.example, 10\.96\.0\.1/,
  ],
  [
    "a URI SAN nobody asked for",
    async (s) => issueLeaf(s.ca, { ...s.good, uris: ["spiffe://cluster/ns/kube-system"] }),
    /SANs include unrequested URI:spiffe:\/\/cluster\/ns\/kube-system/,
  ],
  [
    "a SAN dropped and another added",
    async (s) => issueLeaf(s.ca, { ...s.good, ips: ["10.0.0.22"] }),
    /SANs lack requested 10\.0\.0\.21; include unrequested 10\.0\.0\.22/,
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
    const typed = (err: unknown) =>
      err instanceof VerificationError &&
      err.exitCode === 5 &&
      pattern.test(err.message) &&
      /kubelet-server/.test(err.message);
    assert.throws(() => s.check(pem), typed);
    // The whole check (path validation after these) refuses it too, for the same reason.
    await assert.rejects(s.verify(pem), typed);
  });
}

test("a CA:TRUE leaf whose keyUsage lacks keyCertSign (node:crypto says: not a CA) is refused by path validation", async () => {
  const s = await setup();
  const pem = await issueLeaf(s.ca, { ...s.good, isCa: true, keyUsage: 1 /* digitalSignature */ });
  assert.equal(parseCert(pem).isCa, false, "what node:crypto (X509_check_ca) reports");
  await assert.rejects(
    s.verify(pem),
    /certificate kubelet-server from CA kubernetes: is a CA certificate, not a leaf certificate/,
  );
});

test("a multi-valued RDN (O=system:masters+CN=…) is read as two attributes", () => {
  const dn = parseDn("O=system:masters + CN=system:node:w1\nO=a \\+ CN=b\nCN=c\\,d");
  assert.deepEqual(dn.get("O"), ["system:masters", "a + CN=b"]);
  assert.deepEqual(dn.get("CN"), ["system:node:w1", "c,d"]);
});

test("step-ca: what node-join asks for is the CSR's SANs or the token's, typed as step-ca types them", async () => {
  const client: CertTemplate = { ...template, sans: { dnsNames: [], ips: [] } };
  assert.deepEqual(stepCaRequestedSans(template), [template.sans]);
  assert.deepEqual(stepCaRequestedSans(client), [
    client.sans,
    { dnsNames: [], ips: [], uris: ["system:node:w1"], emails: [] },
  ]);
  assert.deepEqual(stepCaSanSet(["kubernetes-admin", "10.0.0.1", "a@b", "spiffe://x"]), {
    dnsNames: ["kubernetes-admin"],
    ips: ["10.0.0.1"],
    uris: ["spiffe://x"],
    emails: ["a@b"],
  });
  const s = await setup();
  const asked = stepCaRequestedSans(client);
  const none = parseCert(await issueLeaf(s.ca, { ...s.good, dns: [], ips: [] }));
  const tokens = parseCert(
    await issueLeaf(s.ca, { ...s.good, dns: [], ips: [], uris: ["system:node:w1"] }),
  );
  const asDns = parseCert(await issueLeaf(s.ca, { ...s.good, dns: ["system.node.w1"], ips: [] }));
  const both = parseCert(
    await issueLeaf(s.ca, { ...s.good, dns: [], ips: ["10.0.0.9"], uris: ["system:node:w1"] }),
  );
  assert.equal(sanDifference(none, asked), undefined);
  assert.equal(sanDifference(tokens, asked), undefined);
  assert.match(sanDifference(asDns, asked) ?? "", /include unrequested system\.node\.w1/);
  assert.match(sanDifference(both, asked) ?? "", /include unrequested 10\.0\.0\.9/);
  // A CFSSL answer has only the template's set to match: the token's form is not accepted there.
  assert.match(
    sanDifference(tokens, [client.sans]) ?? "",
    /include unrequested URI:system:node:w1/,
  );
});

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
  // Exact, like client-go's certSatisfiesTemplate: extra names, groups or CNs make it due again.
  const extra = async (o: Partial<LeafOptions>) =>
    mismatch(parseCert(await issueLeaf(s.ca, { ...s.good, ...o })), template, anchors, new Date());
  assert.match((await extra({ dns: ["w1", "evil"] })) ?? "", /SANs include unrequested evil/);
  assert.match(
    (await extra({ ips: ["10.0.0.21", "10.96.0.1"] })) ?? "",
    /SANs include unrequested 10\.96\.0\.1/,
  );
  assert.match(
    (await extra({ o: ["system:nodes", "system:masters"] })) ?? "",
    /O has unrequested system:masters/,
  );
  assert.match((await extra({ extraCns: ["kubernetes-admin"] })) ?? "", /subject has 2 CNs/);
  // The SAN sets the CA was asked for (step-ca's token form) are accepted as installed.
  const clientTemplate: CertTemplate = { ...template, sans: { dnsNames: [], ips: [] } };
  const stepClient = parseCert(
    await issueLeaf(s.ca, { ...s.good, dns: [], ips: [], uris: ["system:node:w1"] }),
  );
  assert.match(mismatch(stepClient, clientTemplate, anchors, new Date()) ?? "", /unrequested URI/);
  assert.equal(
    mismatch(
      stepClient,
      clientTemplate,
      anchors,
      new Date(),
      [],
      stepCaRequestedSans(clientTemplate),
    ),
    undefined,
  );
  assert.match(
    mismatch(cert, template, anchors, new Date(Date.now() + 2 * 365 * 86400_000)) ?? "",
    /expired/,
  );
});
