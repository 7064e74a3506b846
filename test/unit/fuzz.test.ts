// Fuzzing the answer parsers and the verifier (issue 7) with fast-check: whatever a CA (or someone
// in its place) answers, the only outcomes are a typed NodeJoinError (exit 4 or 5 in the CLI) or,
// for genuinely valid input, a verified certificate. No TypeError, RangeError or ASN.1 parser error
// may escape. The parsers and the verifier are pure, so nothing can be installed by them.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import fc from "fast-check";
import type { CertTemplate } from "../../agent/pki/certs.js";
import { parseEnvelope, resultCertificate } from "../../agent/ca/cfssl.js";
import { parseCaPem } from "../../agent/ca/common.js";
import { chainOf, parseAnswer, stepCaRefusal } from "../../agent/ca/stepca/client.js";
import { CaRefusedError, NodeJoinError, VerificationError } from "../../agent/common/errors.js";
import { verifyAnswer, verifyIssued, type VerifiedCert } from "../../agent/pki/verify.js";
import { EKU_OIDS, parseCert, type CertInfo } from "../../agent/pki/x509.js";
import { fuzzRuns, seedFastCheck } from "../helpers/fuzz.js";
import { issueLeaf, makeCa, type TestCa } from "../helpers/pki.js";

seedFastCheck();

const template: CertTemplate = {
  commonName: "system:node:w1",
  organizations: ["system:nodes"],
  sans: { dnsNames: ["w1", "w1.lab"], ips: ["10.0.0.21", "2001:db8::21"] },
  usages: ["serverAuth"],
};

let ca: TestCa;
let other: TestCa;
let inter: TestCa;
let anchors: CertInfo[];
let spki: Buffer;
/** A certificate that verifies, one chained through an intermediate, and ones that must not. */
let goodPem: string;
let goodViaInter: string;
let wrongCn: string;
let foreign: string;

before(async () => {
  ca = await makeCa("kubernetes");
  other = await makeCa("kubernetes");
  inter = await makeCa("intermediate", ca);
  anchors = [parseCert(ca.pem)];
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  spki = Buffer.from(await webcrypto.subtle.exportKey("spki", keys.publicKey));
  const good = {
    publicKey: keys.publicKey,
    cn: "system:node:w1",
    o: ["system:nodes"],
    dns: ["w1", "w1.lab"],
    ips: ["10.0.0.21", "2001:db8::21"],
    ekus: [EKU_OIDS.serverAuth],
  };
  goodPem = await issueLeaf(ca, good);
  goodViaInter = (await issueLeaf(inter, good)) + inter.pem;
  wrongCn = await issueLeaf(ca, { ...good, cn: "system:node:w2" });
  foreign = await issueLeaf(other, good);
});

const WHAT = "CA kubernetes (fuzz)";

function input(chainPem: string) {
  return {
    kind: "kubelet-server",
    ca: WHAT,
    chainPem,
    expectedSpki: spki,
    anchors,
    template,
    now: new Date(),
  };
}

function verify(chainPem: string): VerifiedCert {
  return verifyIssued(input(chainPem));
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: NodeJoinError };

/** Runs `f`; a typed NodeJoinError is an allowed outcome, anything else fails the property. */
function outcome(f: () => unknown): Outcome {
  try {
    return { ok: true, value: f() };
  } catch (err) {
    if (err instanceof NodeJoinError) {
      assert.ok(
        err.message.includes(WHAT) || err.message.startsWith("certificate kubelet-server from"),
        `names the CA: ${err.message}`,
      );
      return { ok: false, err };
    }
    throw new Error(
      `unexpected ${(err as Error)?.constructor?.name ?? typeof err} escaped: ${(err as Error)?.stack ?? String(err)}`,
      { cause: err },
    );
  }
}

/** What verifyIssued returned must be a certificate that genuinely fits the request. */
function assertGenuine(v: VerifiedCert): void {
  assert.ok(v.leaf.spki.equals(spki));
  assert.deepEqual(v.leaf.commonNames, [template.commonName]);
  assert.deepEqual(v.leaf.organizations, template.organizations);
  assert.deepEqual(
    [...v.leaf.dnsNames, ...v.leaf.ips, ...v.leaf.uris, ...v.leaf.emails, ...v.leaf.otherSans],
    [...template.sans.dnsNames, ...template.sans.ips],
  );
  assert.ok(!v.leaf.isCa);
  assert.ok(v.leaf.notAfter.getTime() > Date.now());
}

// ---- generators
// ----------------------------------------------------------------------------------

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const pemOf = (der: Uint8Array, label = "CERTIFICATE") =>
  `-----BEGIN ${label}-----\n${(b64(der).match(/.{1,64}/g) ?? []).join("\n")}\n-----END ${label}-----\n`;
const derOf = (pem: string) => Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");

/** Character-level mutations of a PEM text: deletions, insertions, replacements, cuts. */
const mutatedPem = (base: () => string) =>
  fc
    .array(
      fc.tuple(
        fc.nat(),
        fc.constantFrom("del", "ins", "rep", "cut"),
        fc.constantFrom(
          "A",
          "/",
          "+",
          "=",
          "-",
          "\n",
          "\r",
          " ",
          "\u0000",
          "é",
          "-----END CERTIFICATE-----",
          "-----BEGIN CERTIFICATE-----\n",
        ),
      ),
      { minLength: 1, maxLength: 6 },
    )
    .map((ops) => {
      let s = base();
      for (const [pos, op, ch] of ops) {
        const i = pos % (s.length + 1);
        if (op === "del") s = s.slice(0, i) + s.slice(i + 1);
        else if (op === "ins") s = s.slice(0, i) + ch + s.slice(i);
        else if (op === "rep") s = s.slice(0, i) + ch + s.slice(i + 1);
        else s = s.slice(0, i);
      }
      return s;
    });

/** Bit flips of a real certificate's DER. */
const flippedDer = (base: () => string) =>
  fc.array(fc.nat(), { minLength: 1, maxLength: 8 }).map((bits) => {
    const der = Buffer.from(derOf(base()));
    for (const b of bits) {
      const i = b % (der.length * 8);
      der[i >> 3] ^= 1 << (i & 7);
    }
    return pemOf(der);
  });

/** DER cut short, extended, or with bytes replaced. */
const reshapedDer = (base: () => string) =>
  fc.tuple(fc.nat(), fc.nat(), fc.uint8Array({ maxLength: 64 })).map(([at, len, bytes]) => {
    const der = derOf(base());
    const i = at % (der.length + 1);
    return pemOf(
      Buffer.concat([
        der.subarray(0, i),
        bytes,
        der.subarray(Math.min(der.length, i + (len % 16))),
      ]),
    );
  });

/** Anything that may stand where a certificate PEM belongs. */
const certText = fc.oneof(
  fc.constant(null).map(() => goodPem),
  fc.constant(null).map(() => goodViaInter),
  fc.constant(null).map(() => wrongCn + goodPem),
  fc.constant(null).map(() => foreign),
  fc.constant(null).map(() => inter.pem),
  fc.constant(null).map(() => ca.pem),
  mutatedPem(() => goodPem),
  flippedDer(() => goodPem),
  reshapedDer(() => goodPem),
  fc.uint8Array({ maxLength: 600 }).map((b) => pemOf(b)),
  fc.uint8Array({ maxLength: 100 }).map((b) => pemOf(b, "PRIVATE KEY")),
  fc.string({ maxLength: 200 }),
  fc.constant("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
);

const junk = fc.anything({
  maxDepth: 2,
  withNullPrototype: true,
  withBigInt: false,
  withObjectString: true,
});
const anyField = fc.oneof(certText, junk);

/** A JSON text, sometimes cut short. */
const maybeTruncated = (json: fc.Arbitrary<string>) =>
  fc
    .tuple(json, fc.option(fc.nat(), { freq: 4 }))
    .map(([s, cut]) => (cut === null ? s : s.slice(0, cut % (s.length + 1))));

const stringify = (v: unknown): string => JSON.stringify(v) ?? "null";

/**
 * A CA's answer: any text, any JSON, or (mostly) the CA's envelope with any of `fields`, each
 * of any value, sometimes cut short.
 */
const answerBody = (fields: Record<string, fc.Arbitrary<unknown>>) =>
  fc.oneof(
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
    {
      weight: 6,
      arbitrary: maybeTruncated(fc.record(fields, { requiredKeys: [] }).map(stringify)),
    },
  );

const cfsslBody = answerBody({
  success: fc.oneof(fc.boolean(), junk),
  result: fc.oneof(junk, fc.record({ certificate: anyField, extra: junk }, { requiredKeys: [] })),
  errors: fc.oneof(
    junk,
    fc.array(
      fc.record({ code: junk, message: fc.oneof(fc.string(), junk) }, { requiredKeys: [] }),
      { maxLength: 3 },
    ),
  ),
  messages: junk,
  extra: junk,
});

/** Envelopes that are valid: success, the good certificate, any extra fields. */
const validCfsslBody = fc
  .record(
    {
      extra: junk,
      errors: fc.constant([]),
      messages: junk,
      resultExtra: junk,
      chain: fc.boolean(),
    },
    { requiredKeys: ["chain"] },
  )
  .map(({ chain, resultExtra, ...rest }) =>
    stringify({
      ...rest,
      success: true,
      result: { certificate: chain ? goodViaInter : goodPem, extra: resultExtra },
    }),
  );

const stepBody = answerBody({
  crt: anyField,
  ca: anyField,
  certChain: fc.oneof(junk, fc.array(anyField, { maxLength: 3 })),
  tlsOptions: junk,
  status: fc.oneof(fc.integer(), junk),
  message: fc.oneof(fc.string(), junk),
});

const validStepBody = fc
  .record({ shape: fc.constantFrom("chain", "crt+ca", "crt"), tlsOptions: junk })
  .map(({ shape, tlsOptions }) => {
    const [leaf, i] = [goodViaInter.slice(0, goodViaInter.indexOf("-----BEGIN", 10)), inter.pem];
    if (shape === "chain") return stringify({ crt: leaf, ca: i, certChain: [leaf, i], tlsOptions });
    if (shape === "crt+ca") return stringify({ crt: leaf, ca: i, tlsOptions });
    return stringify({ crt: goodPem.trimEnd(), tlsOptions });
  });

// ---- properties
// ----------------------------------------------------------------------------------

const runs = (n: number) => ({ numRuns: fuzzRuns(n) });

function cfsslPipeline(body: string): Outcome {
  return outcome(() =>
    verify(resultCertificate(parseEnvelope(body, WHAT), `${WHAT} signing kubelet-server`)),
  );
}

function stepPipeline(body: string): Outcome {
  return outcome(() => verify(chainOf(parseAnswer(body, WHAT), `${WHAT} signing kubelet-server`)));
}

/** Any answer: a typed error, or a result that really is what was asked for (and some are). */
function typedOrGenuine(
  name: string,
  body: fc.Arbitrary<string>,
  pipeline: (b: string) => Outcome,
): void {
  test(name, () => {
    let ok = 0;
    fc.assert(
      fc.property(body, (b) => {
        const r = pipeline(b);
        if (r.ok) {
          assertGenuine(r.value as VerifiedCert);
          ok++;
        } else
          assert.ok(
            r.err instanceof CaRefusedError || r.err instanceof VerificationError,
            r.err.constructor.name,
          );
      }),
      runs(2500),
    );
    assert.ok(ok > 0, "some generated answers were valid and verified");
  });
}

/** Valid answers, with whatever extra fields, verify. */
function validVerifies(
  name: string,
  body: fc.Arbitrary<string>,
  pipeline: (b: string) => Outcome,
): void {
  test(name, () => {
    fc.assert(
      fc.property(body, (b) => {
        const r = pipeline(b);
        assert.ok(r.ok, r.ok ? "" : r.err.message);
        assertGenuine(r.value as VerifiedCert);
      }),
      runs(300),
    );
  });
}

typedOrGenuine(
  "CFSSL answers: parseEnvelope, resultCertificate and verifyIssued throw only typed errors",
  cfsslBody,
  cfsslPipeline,
);
validVerifies(
  "CFSSL answers that are valid, with any extra fields, verify",
  validCfsslBody,
  cfsslPipeline,
);
typedOrGenuine(
  "step-ca /1.0/sign answers: parseAnswer, chainOf and verifyIssued throw only typed errors",
  stepBody,
  stepPipeline,
);
validVerifies(
  "step-ca answers that are valid (certChain, crt+ca, crt alone) verify",
  validStepBody,
  stepPipeline,
);

test("step-ca error answers {status, message} of any shape become a CaRefusedError, never a throw", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 300, max: 599 }),
      fc.oneof(
        fc.string({ maxLength: 100 }),
        fc
          .record({ status: junk, message: fc.oneof(fc.string(), junk) }, { requiredKeys: [] })
          .map(stringify),
      ),
      (status, body) => {
        const err = stepCaRefusal(status, body, WHAT, "unauthorized");
        assert.ok(err instanceof CaRefusedError);
        assert.equal(err.exitCode, 4);
        assert.ok(err.message.startsWith(WHAT));
      },
    ),
    runs(1000),
  );
});

test("verifyIssued on bit-flipped, reshaped and text-mutated certificates: VerificationError or a genuine result", () => {
  let rejected = 0;
  fc.assert(
    fc.property(
      fc.oneof(
        flippedDer(() => goodPem),
        reshapedDer(() => goodPem),
        mutatedPem(() => goodPem),
        flippedDer(() => goodViaInter.slice(goodViaInter.indexOf("-----BEGIN", 10))).map(
          (i) => goodViaInter.slice(0, goodViaInter.indexOf("-----BEGIN", 10)) + i,
        ),
      ),
      (pem) => {
        const r = outcome(() => verify(pem));
        if (r.ok) assertGenuine(r.value as VerifiedCert);
        else {
          assert.ok(r.err instanceof VerificationError, r.err.constructor.name);
          assert.match(r.err.message, /^certificate kubelet-server from CA kubernetes \(fuzz\): /);
          rejected++;
        }
      },
    ),
    runs(3000),
  );
  assert.ok(rejected > 0);
});

test("verifyAnswer (RFC 5280 path validation included) on mutated certificates and chains: VerificationError or a genuine result", async () => {
  let rejected = 0;
  let accepted = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.constant(null).map(() => goodPem),
        fc.constant(null).map(() => goodViaInter),
        flippedDer(() => goodPem),
        reshapedDer(() => goodPem),
        flippedDer(() => goodViaInter.slice(goodViaInter.indexOf("-----BEGIN", 10))).map(
          (i) => goodViaInter.slice(0, goodViaInter.indexOf("-----BEGIN", 10)) + i,
        ),
        reshapedDer(() => inter.pem).map(
          (i) => goodViaInter.slice(0, goodViaInter.indexOf("-----BEGIN", 10)) + i,
        ),
      ),
      async (pem) => {
        try {
          assertGenuine(await verifyAnswer(input(pem)));
          accepted++;
        } catch (err) {
          if (!(err instanceof VerificationError))
            throw new Error(`unexpected ${(err as Error)?.stack ?? String(err)}`, { cause: err });
          assert.match(err.message, /^certificate kubelet-server from CA kubernetes \(fuzz\): /);
          rejected++;
        }
      },
    ),
    runs(600),
  );
  assert.ok(rejected > 0 && accepted > 0, `${accepted} accepted, ${rejected} rejected`);
});

test("CA certificates in an /info or /roots answer: parseCaPem throws only CaRefusedError", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        mutatedPem(() => ca.pem),
        flippedDer(() => ca.pem),
        reshapedDer(() => ca.pem),
        fc.string({ maxLength: 200 }),
      ),
      (pem) => {
        const r = outcome(() => parseCaPem(pem, WHAT, "info answer"));
        if (!r.ok) assert.ok(r.err instanceof CaRefusedError, r.err.constructor.name);
      },
    ),
    runs(1500),
  );
});
