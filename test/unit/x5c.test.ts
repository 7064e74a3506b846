// x5c tokens as a JOSE verifier reads them: the header's chain, the algorithm per key type, the
// claims; verified with the certificate's public key taken from the header, as step-ca does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, KeyObject, sign } from "node:crypto";
import { jwtVerify, decodeProtectedHeader, importX509 } from "jose";
import { jwsAlgorithm, signX5cToken } from "../../agent/ca/x5c.js";
import { JoseError } from "../../agent/ca/jose.js";
import { makeCa } from "../helpers/pki.js";

test("jwsAlgorithm follows the key: ES256/ES384 by curve, RS256, EdDSA; others refused", () => {
  const ec = (namedCurve: string) => generateKeyPairSync("ec", { namedCurve }).privateKey;
  assert.equal(jwsAlgorithm(ec("prime256v1")), "ES256");
  assert.equal(jwsAlgorithm(ec("secp384r1")), "ES384");
  assert.equal(
    jwsAlgorithm(generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey),
    "RS256",
  );
  assert.equal(jwsAlgorithm(generateKeyPairSync("ed25519").privateKey), "EdDSA");
  assert.throws(() => jwsAlgorithm(ec("secp256k1")), JoseError);
});

test("signX5cToken: the chain in x5c, the claims asked for, verifiable with the leaf's key", async () => {
  const machine = await makeCa("node-1");
  const certPem = machine.pem;
  const der = Buffer.from(machine.cert.rawData);
  const key = KeyObject.from(machine.keys.privateKey);
  const now = 1_900_000_000;
  const token = await signX5cToken({
    chainDer: [der],
    key,
    issuer: "x5c-prov",
    subject: "node-1",
    audience: "https://ca:9000/1.0/sign",
    now,
    lifetimeS: 300,
    extra: { sans: ["node-1", "10.0.0.5"] },
  });
  const header = decodeProtectedHeader(token);
  assert.deepEqual(header.x5c, [der.toString("base64")]);
  assert.equal(header.alg, jwsAlgorithm(key));
  const pub = await importX509(certPem, String(header.alg));
  const { payload } = await jwtVerify(token, pub, {
    issuer: "x5c-prov",
    subject: "node-1",
    audience: "https://ca:9000/1.0/sign",
    currentDate: new Date((now + 10) * 1000),
  });
  assert.equal(payload.exp, now + 300);
  assert.deepEqual(payload.sans, ["node-1", "10.0.0.5"]);
  assert.match(String(payload.jti), /^[0-9a-f]{64}$/);
  // another key does not verify it
  const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey;
  await assert.rejects(jwtVerify(token, other, { currentDate: new Date((now + 10) * 1000) }));
});

test("signX5cToken with a signer (the TPM): the same header and claims, ES256 r‖s that verifies", async () => {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const now = 1_900_000_000;
  const base = {
    chainDer: [Buffer.from("leaf")],
    issuer: "machines",
    subject: "system:node:w1",
    audience: ["https://ca:9000/1.0/sign#x5c/machines"],
    now,
    lifetimeS: 300,
    extra: { sans: ["w1"] },
  };
  const inputs: Buffer[] = [];
  const token = await signX5cToken({
    ...base,
    key: {
      alg: "ES256",
      sign: async (input) => {
        inputs.push(input);
        return sign("sha256", input, { key: privateKey, dsaEncoding: "ieee-p1363" });
      },
    },
  });
  const [h, p] = token.split(".");
  assert.equal(inputs[0]!.toString("ascii"), `${h}.${p}`, "the JWS signing input, once");
  const { payload, protectedHeader } = await jwtVerify(token, publicKey, {
    currentDate: new Date((now + 10) * 1000),
  });
  const withKey = await signX5cToken({ ...base, key: privateKey });
  const { jti: _a, ...claims } = payload;
  const { jti: _b, ...keyClaims } = (
    await jwtVerify(withKey, publicKey, {
      currentDate: new Date((now + 10) * 1000),
    })
  ).payload;
  assert.deepEqual(claims, keyClaims, "the claims of the key's token");
  assert.deepEqual(protectedHeader, decodeProtectedHeader(withKey));
  // r‖s of another key does not verify
  const other = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey;
  await assert.rejects(jwtVerify(token, other, { currentDate: new Date((now + 10) * 1000) }));
});
