// RFC 5280 path validation of a CA's answer (agent/pki/path.ts), judged against OpenSSL: every
// chain below is given to node-join's verifier (verifyAnswer, the check every answer passes
// before anything is written) and to
//   openssl verify -x509_strict -auth_level 2 -purpose sslserver|sslclient \
//     -CAfile <anchor> -untrusted <intermediates> <leaf>
// and the two verdicts must agree. Each chain differs from a good one in one thing (pathLen, name
// constraints, keyUsage, basicConstraints, EKU of a CA, validity, signature and key algorithms,
// critical extensions), then a seeded batch mixes several. Three differences from OpenSSL are
// deliberate and asserted as such (DIVERGENCES).
import { test } from "node:test";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import type { CertTemplate } from "../../agent/pki/certs.js";
import { VerificationError } from "../../agent/common/errors.js";
import { verifyAnswer } from "../../agent/pki/verify.js";
import { parseCert } from "../../agent/pki/x509.js";
import {
  EKU,
  KU,
  mint,
  newKeys,
  opensslVerdict,
  type CertSpec,
  type Chain,
} from "../helpers/chains.js";
import { mulberry32 } from "../helpers/prng.js";

const DAY = 86400_000;
type Kind = "server" | "client";

interface Case {
  name: string;
  kind?: Kind;
  root?: Partial<CertSpec>;
  /** The intermediates, top (signed by the root) first; default one plain intermediate. */
  inters?: Partial<CertSpec>[];
  leaf?: Partial<CertSpec>;
  /** node-join's refusal, matched against its message; undefined: it accepts. */
  refuses?: RegExp;
}

const LEAF: Record<Kind, Partial<CertSpec>> = {
  server: {
    cn: "system:node:w1",
    o: ["system:nodes"],
    dns: ["w1", "w1.lab"],
    ips: ["10.0.0.21"],
    ekus: [EKU.serverAuth],
  },
  client: { cn: "system:node:w1", o: ["system:nodes"], ekus: [EKU.clientAuth] },
};

async function build(c: Case): Promise<{ chain: Chain; template: CertTemplate; kind: Kind }> {
  const kind = c.kind ?? "server";
  const anchor = await mint({ cn: "root", ca: true, ...c.root });
  const intermediates = [];
  let issuer = anchor;
  for (const [i, spec] of (c.inters ?? [{}]).entries()) {
    issuer = await mint({ cn: `inter${i || ""}`, ca: true, issuer, ...spec });
    intermediates.push(issuer);
  }
  const spec = { ...LEAF[kind], ...c.leaf };
  const leaf = await mint({ cn: "x", ca: false, issuer, ...spec });
  const template: CertTemplate = {
    commonName: Array.isArray(spec.cn) ? spec.cn[0]! : spec.cn!,
    organizations: spec.o ?? [],
    sans: { dnsNames: spec.dns ?? [], ips: spec.ips ?? [] },
    usages: [kind === "server" ? "serverAuth" : "clientAuth"],
  };
  // The leaf nearest the anchor first in the answer, as a CA sends it.
  return { chain: { anchor, intermediates: intermediates.reverse(), leaf }, template, kind };
}

/** node-join's verdict: undefined when it accepts, else its message. */
async function nodeJoinVerdict(chain: Chain, template: CertTemplate): Promise<string | undefined> {
  const spki = Buffer.from(await webcrypto.subtle.exportKey("spki", chain.leaf.keys.publicKey));
  try {
    await verifyAnswer({
      kind: "kubelet-server",
      ca: "CA kubernetes (test)",
      chainPem: [chain.leaf, ...chain.intermediates].map((c) => c.pem).join(""),
      expectedSpki: spki,
      anchors: [parseCert(chain.anchor.pem)],
      template,
      now: new Date(),
    });
    return undefined;
  } catch (err) {
    assert.ok(err instanceof VerificationError, `typed error: ${String(err)}`);
    assert.equal(err.exitCode, 5);
    assert.match(err.message, /^certificate kubelet-server from CA kubernetes \(test\): /);
    return err.message;
  }
}

const past = { notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) };
const future = { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 3 * DAY) };

const CASES: Case[] = [
  { name: "a good chain (root, intermediate, leaf)" },
  { name: "a good chain without intermediate", inters: [] },
  { name: "a good client chain", kind: "client" },
  { name: "a good P-384 chain", root: { key: "p384" }, inters: [{ key: "p384" }] },
  { name: "a good RSA-2048 chain", root: { key: "rsa2048" }, inters: [{ key: "rsa2048" }] },
  {
    name: "root pathLenConstraint 0 above a signing intermediate",
    root: { pathLen: 0 },
    refuses:
      /chain certificate "root" allows 0 intermediate CA certificates below it \(pathLenConstraint\), but the path has 1/,
  },
  {
    name: "root pathLenConstraint 1 above two intermediates",
    root: { pathLen: 1 },
    inters: [{}, {}],
    refuses: /chain certificate "root" allows 1 intermediate CA certificate below it/,
  },
  {
    name: "intermediate pathLenConstraint 0 above the leaf only",
    inters: [{ pathLen: 0 }],
  },
  {
    name: "root excludes a DNS name the leaf has",
    root: { excluded: { dns: ["w1.lab"] } },
    refuses:
      /its DNS name "w1\.lab" is excluded by the name constraints of chain certificate "root"/,
  },
  {
    name: "root permits other DNS names only",
    root: { permitted: { dns: ["example.com"] } },
    refuses: /its DNS name "w1" is outside the names permitted by chain certificate "root"/,
  },
  { name: "root permits the leaf's DNS names", root: { permitted: { dns: ["w1", "lab"] } } },
  {
    name: "root excludes the leaf's IP range",
    root: { excluded: { ips: ["10.0.0.0/8"] } },
    refuses:
      /its IP address 10\.0\.0\.21 is excluded by the name constraints of chain certificate "root"/,
  },
  {
    name: "root permits another IP range",
    root: { permitted: { ips: ["192.168.0.0/16"] } },
    refuses:
      /its IP address 10\.0\.0\.21 is outside the addresses permitted by chain certificate "root"/,
  },
  {
    name: "root permits an IPv4 range, the leaf has an IPv6 address too",
    root: { permitted: { ips: ["10.0.0.0/8"] } },
    leaf: { ips: ["10.0.0.21", "2001:db8::21"] },
    refuses: /its IP address 2001:db8::21 is outside the addresses permitted/,
  },
  {
    name: "root permits both address families",
    root: { permitted: { ips: ["10.0.0.0/8", "2001:db8::/32"] } },
    leaf: { ips: ["10.0.0.21", "2001:db8::21"] },
  },
  {
    name: "intermediate permits more than the root (permitted subtrees intersect)",
    root: { permitted: { dns: ["example.com"] } },
    inters: [{ permitted: { dns: ["w1", "lab"] } }],
    refuses: /outside the names permitted by chain certificate "root"/,
  },
  {
    name: "intermediate excludes the leaf's DNS name",
    inters: [{ excluded: { dns: ["w1"] } }],
    refuses: /its DNS name "w1" is excluded by the name constraints of chain certificate "inter"/,
  },
  {
    name: "client leaf whose CN names a host outside the root's permitted DNS names",
    kind: "client",
    root: { permitted: { dns: ["example.com"] } },
    leaf: { cn: "w1.lab" },
    refuses: /its DNS name "w1\.lab" is outside the names permitted/,
  },
  {
    name: "client leaf whose CN is no host name, below a DNS-constrained root",
    kind: "client",
    root: { permitted: { dns: ["example.com"] } },
    leaf: { cn: "kube-apiserver-etcd-client", o: [] },
  },
  {
    name: "leaf CA:TRUE without keyUsage",
    leaf: { ca: true, keyUsage: null },
    refuses: /is a CA certificate, not a leaf certificate/,
  },
  {
    name: "leaf with keyCertSign but not a CA",
    leaf: { keyUsage: KU.digitalSignature | KU.keyCertSign },
    refuses: /it has keyCertSign in its key usage, which only a CA may have/,
  },
  {
    name: "leaf with a pathLenConstraint but not a CA",
    leaf: { ca: false, pathLen: 0 },
    refuses: /it has a pathLenConstraint but is not a CA/,
  },
  {
    name: "serving leaf with keyUsage keyEncipherment only",
    leaf: { keyUsage: KU.keyEncipherment },
  },
  {
    name: "client leaf with keyUsage keyEncipherment only",
    kind: "client",
    leaf: { keyUsage: KU.keyEncipherment },
    refuses: /it has a key usage that does not allow TLS client authentication/,
  },
  {
    name: "leaf with keyUsage cRLSign only",
    leaf: { keyUsage: KU.cRLSign },
    refuses: /it has a key usage that does not allow TLS server authentication/,
  },
  {
    name: "intermediate without keyCertSign",
    inters: [{ keyUsage: KU.digitalSignature | KU.cRLSign }],
    refuses: /does not chain to the pinned CA|may not sign certificates/,
  },
  {
    name: "intermediate CA:FALSE",
    inters: [{ ca: false }],
    refuses: /does not chain to the pinned CA|is not a CA certificate/,
  },
  {
    name: "intermediate without basicConstraints",
    inters: [{ ca: undefined }],
    refuses: /does not chain to the pinned CA|is not a CA certificate/,
  },
  {
    name: "root without basicConstraints",
    root: { ca: undefined, keyUsage: KU.keyCertSign },
    refuses: /is not a CA certificate/,
  },
  {
    name: "intermediate basicConstraints not critical",
    inters: [{ caCritical: false }],
    refuses: /chain certificate "inter" does not mark basicConstraints critical/,
  },
  {
    name: "root basicConstraints not critical",
    root: { caCritical: false },
    refuses: /chain certificate "root" does not mark basicConstraints critical/,
  },
  {
    name: "intermediate expired",
    inters: [past],
    refuses: /chain certificate "inter" expired at/,
  },
  {
    name: "intermediate not yet valid",
    inters: [future],
    refuses: /chain certificate "inter" is not valid before/,
  },
  { name: "root expired", root: past, refuses: /chain certificate "root" expired at/ },
  {
    name: "leaf signed with ECDSA SHA-1",
    leaf: { hash: "SHA-1" },
    refuses: /it is signed with ecdsa-with-SHA1, which is weak or unsupported/,
  },
  {
    name: "intermediate signed with ECDSA SHA-1",
    inters: [{ hash: "SHA-1" }],
    refuses: /chain certificate "inter" is signed with ecdsa-with-SHA1/,
  },
  {
    name: "intermediate signed with RSA SHA-1",
    root: { key: "rsa2048" },
    inters: [{ hash: "SHA-1" }],
    refuses: /chain certificate "inter" is signed with sha1WithRSAEncryption/,
  },
  {
    name: "root self-signed with SHA-1 (an anchor's own signature is not used)",
    root: { hash: "SHA-1" },
  },
  { name: "leaf SHA-384", leaf: { hash: "SHA-384" } },
  {
    name: "intermediate names another signature algorithm inside than outside",
    inters: [{ innerAlgorithmMismatch: true }],
    // OpenSSL 3's X509_verify (node:crypto) already refuses the inconsistency (RFC 5280 4.1.1.2).
    refuses:
      /does not chain to the pinned CA|chain certificate "inter" names signature algorithm 1\.2\.840\.10045\.4\.3\.3 in its body but 1\.2\.840\.10045\.4\.3\.2 outside/,
  },
  {
    name: "leaf with a 1024-bit RSA key",
    leaf: { key: "rsa1024" },
    refuses: /it has a 1024-bit RSA key; at least 2048 bits are required/,
  },
  {
    name: "intermediate with a 1024-bit RSA key",
    inters: [{ key: "rsa1024" }],
    refuses: /chain certificate "inter" has a 1024-bit RSA key/,
  },
  {
    name: "intermediate limited to clientAuth, serving leaf",
    inters: [{ ekus: [EKU.clientAuth] }],
    refuses:
      /chain certificate "inter" limits extended key usage to clientAuth, which excludes serverAuth/,
  },
  {
    name: "root limited to serverAuth, client leaf",
    kind: "client",
    root: { ekus: [EKU.serverAuth] },
    refuses:
      /chain certificate "root" limits extended key usage to serverAuth, which excludes clientAuth/,
  },
  {
    name: "intermediate allowing serverAuth and clientAuth",
    inters: [{ ekus: [EKU.serverAuth, EKU.clientAuth] }],
  },
  {
    name: "leaf with an unknown critical extension",
    leaf: { unknownCritical: true },
    refuses: /it has an unrecognised critical extension 1\.3\.6\.1\.4\.1\.55555\.1/,
  },
  {
    name: "intermediate with an unknown critical extension",
    inters: [{ unknownCritical: true }],
    refuses: /chain certificate "inter" has an unrecognised critical extension/,
  },
];

/**
 * Where node-join and `openssl verify -x509_strict` disagree on purpose, and why. Each is asserted:
 * node-join's verdict as `refuses` says, OpenSSL's as `openssl` says.
 */
const DIVERGENCES: (Case & { openssl: RegExp | undefined; why: string })[] = [
  {
    name: "leaf CA:TRUE with keyUsage digitalSignature only",
    leaf: { ca: true, keyUsage: KU.digitalSignature },
    refuses: /is a CA certificate, not a leaf certificate/,
    openssl: undefined,
    why: "OpenSSL (and Go) accept it as a leaf; a certificate that says it is a CA is no node credential (RFC 5280 4.2.1.9)",
  },
  {
    name: "no subject or authority key identifiers",
    root: { noKeyIds: true },
    inters: [{ noKeyIds: true }],
    leaf: { noKeyIds: true },
    openssl: /Missing Authority Key Identifier/,
    why: "-x509_strict requires them; RFC 5280 path validation and Go do not, and kubeadm CAs made before Go 1.15 have none",
  },
  {
    name: "CA certificates without keyUsage",
    root: { keyUsage: null },
    inters: [{ keyUsage: null }],
    openssl: /CA cert does not include key usage extension/,
    why: "-x509_strict requires it; path validation and Go do not, and a CA made as the Kubernetes docs show (openssl req -x509) has none",
  },
];

for (const c of CASES) {
  test(`path validation agrees with OpenSSL: ${c.name}`, async () => {
    const { chain, template, kind } = await build(c);
    const ours = await nodeJoinVerdict(chain, template);
    const theirs = opensslVerdict(chain, kind === "server" ? "sslserver" : "sslclient");
    if (c.refuses) assert.match(ours ?? "(accepted)", c.refuses);
    else assert.equal(ours, undefined);
    assert.equal(
      ours === undefined,
      theirs === undefined,
      `node-join: ${ours ?? "accepts"}; openssl: ${theirs ?? "accepts"}`,
    );
  });
}

for (const d of DIVERGENCES) {
  test(`path validation differs from OpenSSL on purpose: ${d.name} (${d.why})`, async () => {
    const { chain, template, kind } = await build(d);
    const ours = await nodeJoinVerdict(chain, template);
    const theirs = opensslVerdict(chain, kind === "server" ? "sslserver" : "sslclient");
    if (d.refuses) assert.match(ours ?? "(accepted)", d.refuses);
    else assert.equal(ours, undefined);
    if (d.openssl) assert.match(theirs ?? "(accepted)", d.openssl);
    else assert.equal(theirs, undefined);
  });
}

test("path validation agrees with OpenSSL on a seeded batch of chains with several defects each", async () => {
  const rnd = mulberry32(Number(process.env.FUZZ_SEED ?? 20_261_130));
  const pick = <T>(...xs: T[]): T => xs[rnd.uint32() % xs.length]!;
  const maybe = (p: number) => rnd.random() < p;
  const ca = (): Partial<CertSpec> => ({
    ...(maybe(0.2) ? { pathLen: pick(0, 1) } : {}),
    ...(maybe(0.1) ? { keyUsage: KU.digitalSignature } : {}),
    ...(maybe(0.1) ? { caCritical: false } : {}),
    ...(maybe(0.1) ? { ekus: [pick(EKU.serverAuth, EKU.clientAuth)] } : {}),
    ...(maybe(0.15)
      ? pick<Partial<CertSpec>>(
          { permitted: { dns: [pick("w1", "lab", "example.com")] } },
          { excluded: { dns: [pick("w1", "w1.lab", "example.com")] } },
          { permitted: { ips: [pick("10.0.0.0/8", "192.168.0.0/16")] } },
          { excluded: { ips: [pick("10.0.0.0/24", "172.16.0.0/12")] } },
        )
      : {}),
    ...(maybe(0.08) ? { hash: "SHA-1" as const } : {}),
    ...(maybe(0.08) ? pick(past, future) : {}),
  });
  const agreed: string[] = [];
  let refused = 0;
  for (let i = 0; i < 40; i++) {
    const c: Case = {
      name: `random ${i}`,
      kind: pick<Kind>("server", "client"),
      root: ca(),
      inters: Array.from({ length: rnd.uint32() % 3 }, ca),
      leaf: {
        ...(maybe(0.1) ? { hash: "SHA-1" as const } : {}),
        ...(maybe(0.1)
          ? { keyUsage: pick(KU.keyEncipherment, KU.digitalSignature, KU.cRLSign) }
          : {}),
        ...(maybe(0.05) ? { unknownCritical: true } : {}),
        ...(maybe(0.05) ? past : {}),
      },
    };
    const { chain, template, kind } = await build(c);
    const ours = await nodeJoinVerdict(chain, template);
    const theirs = opensslVerdict(chain, kind === "server" ? "sslserver" : "sslclient");
    assert.equal(
      ours === undefined,
      theirs === undefined,
      `${JSON.stringify(c)}\nnode-join: ${ours ?? "accepts"}\nopenssl: ${theirs ?? "accepts"}`,
    );
    if (ours) refused++;
    agreed.push(c.name);
  }
  assert.equal(agreed.length, 40);
  assert.ok(refused > 5 && refused < 35, `a mix of verdicts (${refused} of 40 refused)`);
});

test("the leaf key of a chain must be the one the CSR was made with (checked before the path)", async () => {
  const { chain, template } = await build({ name: "other key" });
  const other = await newKeys();
  const spki = Buffer.from(await webcrypto.subtle.exportKey("spki", other.publicKey));
  await assert.rejects(
    verifyAnswer({
      kind: "kubelet-server",
      ca: "CA kubernetes (test)",
      chainPem: chain.leaf.pem + chain.intermediates.map((c) => c.pem).join(""),
      expectedSpki: spki,
      anchors: [parseCert(chain.anchor.pem)],
      template,
      now: new Date(),
    }),
    /is for a different public key/,
  );
});
