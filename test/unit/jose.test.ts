// The step-ca JOSE (panva's jose behind agent/ca/jose.ts), checked against what real smallstep code
// produced: a provisioner key encrypted by go.step.sm/crypto/jose (as `step ca init`) and a token
// from `step ca token`'s code path (test/fixtures/stepca-provisioner.json, made with the
// test/stepca harness).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, verify, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { compactVerify } from "jose";
import {
  decodeJwt,
  decryptPbes2Jwe,
  importPrivateJwk,
  JoseError,
  jwkThumbprint,
  MAX_PBES2_COUNT,
  signJwt,
  WrongPasswordError,
} from "../../agent/ca/jose.js";

const b64url = (data: Buffer | string): string => Buffer.from(data).toString("base64url");
const publicKeyFromJwk = (jwk: Fixture["key"]): KeyObject =>
  createPublicKey({ key: jwk, format: "jwk" });
/** Whether a compact JWS verifies with the key (jose's verifier, independent of the signer). */
const verifyJwt = (token: string, key: KeyObject): Promise<boolean> =>
  compactVerify(token, key).then(
    () => true,
    () => false,
  );

interface Fixture {
  provisioner: string;
  password: string;
  key: { kid: string; kty: string; crv: string; x: string; y: string; alg: string };
  encryptedKey: string;
  rootFingerprint: string;
  caUrl: string;
  token: string;
}
const fx = JSON.parse(
  readFileSync(new URL("../fixtures/stepca-provisioner.json", import.meta.url), "utf8"),
) as Fixture;

/** How many keys jose derives (PBES2 runs PBKDF2 through crypto.subtle.deriveBits) during `run`. */
async function countDerivations(run: () => Promise<unknown>): Promise<number> {
  const subtle = globalThis.crypto.subtle;
  const deriveBits = subtle.deriveBits.bind(subtle);
  let count = 0;
  subtle.deriveBits = (...args: Parameters<SubtleCrypto["deriveBits"]>) => {
    count++;
    return deriveBits(...args);
  };
  try {
    await run();
  } finally {
    delete (subtle as Partial<SubtleCrypto>).deriveBits;
  }
  return count;
}

test("decrypts a provisioner key that smallstep encrypted (PBES2-HS256+A128KW, A256GCM, p2c 100000)", async () => {
  const header = decodeJwtPart(fx.encryptedKey.split(".")[0]!);
  assert.deepEqual([header.alg, header.enc, header.p2c], ["PBES2-HS256+A128KW", "A256GCM", 100000]);
  const jwk = JSON.parse(
    (await decryptPbes2Jwe(fx.encryptedKey, fx.password)).toString("utf8"),
  ) as Record<string, string>;
  assert.equal(jwk.kty, "EC");
  assert.equal(jwk.crv, "P-256");
  assert.equal(jwk.x, fx.key.x);
  assert.equal(jwk.y, fx.key.y);
  assert.equal(jwk.kid, fx.key.kid);
  assert.ok(jwk.d, "the private scalar");
  const signer = await importPrivateJwk(JSON.stringify(jwk));
  assert.equal(signer.alg, "ES256");
  assert.equal(signer.thumbprint, await jwkThumbprint(fx.key), "private half of the published key");
  // step's kid is the RFC 7638 thumbprint.
  assert.equal(signer.thumbprint, fx.key.kid);
});

test("a wrong password, a damaged JWE and an excessive PBES2 count are refused", async () => {
  await assert.rejects(decryptPbes2Jwe(fx.encryptedKey, `${fx.password}x`), WrongPasswordError);
  const parts = fx.encryptedKey.split(".");
  const flipped = Buffer.from(parts[3]!, "base64url");
  flipped[0] ^= 1;
  await assert.rejects(
    decryptPbes2Jwe([...parts.slice(0, 3), b64url(flipped), parts[4]].join("."), fx.password),
    WrongPasswordError,
  );
  const greedy = { ...decodeJwtPart(parts[0]!), p2c: MAX_PBES2_COUNT + 1 };
  // Counted, not timed: a loaded machine can take long to refuse, a fast one derives quickly.
  const derivations = await countDerivations(() => decryptPbes2Jwe(fx.encryptedKey, fx.password));
  assert.ok(derivations > 0, "a PBES2 decryption derives its key with crypto.subtle.deriveBits");
  assert.equal(
    await countDerivations(() =>
      assert.rejects(
        decryptPbes2Jwe([b64url(JSON.stringify(greedy)), ...parts.slice(1)].join("."), fx.password),
        /asks for 1000001 PBES2 iterations/,
      ),
    ),
    0,
    "refused before deriving anything",
  );
  // jose's own limit (maxPBES2Count) stands behind ours.
  await assert.rejects(decryptPbes2Jwe(fx.encryptedKey, fx.password, 1000), JoseError);
  await assert.rejects(decryptPbes2Jwe("a.b.c", fx.password), JoseError);
  const otherAlg = { ...decodeJwtPart(parts[0]!), alg: "dir" };
  await assert.rejects(
    decryptPbes2Jwe([b64url(JSON.stringify(otherAlg)), ...parts.slice(1)].join("."), fx.password),
    /alg "dir" is not supported/,
  );
});

test("a minted ES256 token has step's header and claims, and its r||s signature verifies with the provisioner key", async () => {
  const signer = await importPrivateJwk(await decryptPbes2Jwe(fx.encryptedKey, fx.password));
  const claims = {
    aud: [`${fx.caUrl}/1.0/sign`],
    sub: "system:node:w1",
    iss: fx.provisioner,
    sans: ["w1", "10.0.0.5"],
    iat: 1,
    nbf: 1,
    exp: 301,
    jti: "j",
    sha: fx.rootFingerprint,
  };
  const token = await signJwt({ kid: fx.key.kid, typ: "JWT" }, claims, signer);
  const ours = decodeJwt(token);
  const real = decodeJwt(fx.token);
  assert.deepEqual(ours.header, { alg: "ES256", kid: fx.key.kid, typ: "JWT" });
  assert.deepEqual(
    Object.keys(ours.header).sort(),
    Object.keys(real.header).sort(),
    "same header fields as smallstep's",
  );
  assert.deepEqual(
    Object.keys(ours.claims).sort(),
    Object.keys(real.claims).sort(),
    "same claims as smallstep's",
  );
  assert.deepEqual(ours.claims, claims);
  const [h, p, sig] = token.split(".") as [string, string, string];
  assert.equal(Buffer.from(sig, "base64url").length, 64, "raw r||s, not DER");
  const pub = publicKeyFromJwk(fx.key);
  assert.ok(
    verify(
      "sha256",
      Buffer.from(`${h}.${p}`),
      { key: pub, dsaEncoding: "ieee-p1363" },
      Buffer.from(sig, "base64url"),
    ),
  );
  assert.ok(await verifyJwt(token, pub));
  // And smallstep's own token verifies with the same key.
  assert.ok(await verifyJwt(fx.token, pub));
  assert.deepEqual(real.claims.aud, [`${fx.caUrl}/1.0/sign`]);
  assert.equal(real.claims.sha, fx.rootFingerprint);
  const tampered = `${h}.${b64url(JSON.stringify({ ...claims, sub: "system:node:w2" }))}.${sig}`;
  assert.equal(await verifyJwt(tampered, pub), false);
});

function decodeJwtPart(part: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>;
}
