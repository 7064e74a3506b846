// The little JOSE that step-ca enrolment needs, on node:crypto alone: decrypting a JWK
// provisioner's encryptedKey (compact JWE, PBES2 + AES key wrap + AES-GCM, RFC 7518) and signing
// one-time tokens (compact JWS). No general JOSE library: fewer algorithms, fewer surprises.
import {
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  pbkdf2Sync,
  randomBytes,
  sign,
  verify,
  type JsonWebKey,
  type KeyObject,
} from "node:crypto";

/** PBES2 iterations a JWE may ask for; step uses 100,000, and each one costs us CPU time. */
export const MAX_PBES2_COUNT = 1_000_000;

export class JoseError extends Error {}

const PBES2: Record<string, { hash: string; keyBytes: number; wrap: string }> = {
  "PBES2-HS256+A128KW": { hash: "sha256", keyBytes: 16, wrap: "id-aes128-wrap" },
  "PBES2-HS384+A192KW": { hash: "sha384", keyBytes: 24, wrap: "id-aes192-wrap" },
  "PBES2-HS512+A256KW": { hash: "sha512", keyBytes: 32, wrap: "id-aes256-wrap" },
};
const GCM: Record<
  string,
  { cipher: "aes-128-gcm" | "aes-192-gcm" | "aes-256-gcm"; keyBytes: number }
> = {
  A128GCM: { cipher: "aes-128-gcm", keyBytes: 16 },
  A192GCM: { cipher: "aes-192-gcm", keyBytes: 24 },
  A256GCM: { cipher: "aes-256-gcm", keyBytes: 32 },
};
/** RFC 3394's default initial value: unwrapping checks it, which is how a wrong password shows. */
const KEY_WRAP_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex");

export function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

function fromB64url(part: string, what: string): Buffer {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw new JoseError(`${what} is not base64url`);
  return Buffer.from(part, "base64url");
}

function parseJsonObject(data: Buffer, what: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(data.toString("utf8"));
  } catch {
    throw new JoseError(`${what} is not JSON`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new JoseError(`${what} is not a JSON object`);
  return v as Record<string, unknown>;
}

export class WrongPasswordError extends JoseError {}

/**
 * Decrypts a compact JWE made with a password (PBES2-HS*+A*KW, A*GCM), as `step ca init` encrypts
 * a provisioner key. Throws WrongPasswordError when the key unwrap or the GCM tag does not verify.
 */
export function decryptPbes2Jwe(
  compact: string,
  password: string,
  maxCount = MAX_PBES2_COUNT,
): Buffer {
  const parts = compact.trim().split(".");
  if (parts.length !== 5) throw new JoseError(`not a compact JWE (${parts.length} parts, want 5)`);
  const [headerB64, wrappedB64, ivB64, cipherB64, tagB64] = parts as [
    string,
    string,
    string,
    string,
    string,
  ];
  const header = parseJsonObject(fromB64url(headerB64, "JWE header"), "JWE header");
  const alg = PBES2[String(header.alg)];
  const enc = GCM[String(header.enc)];
  if (!alg)
    throw new JoseError(
      `JWE alg ${JSON.stringify(header.alg)} is not supported (want PBES2-HS256+A128KW or another PBES2 variant)`,
    );
  if (!enc)
    throw new JoseError(
      `JWE enc ${JSON.stringify(header.enc)} is not supported (want A128GCM, A192GCM or A256GCM)`,
    );
  const count = header.p2c;
  if (typeof count !== "number" || !Number.isInteger(count) || count < 1)
    throw new JoseError("JWE header p2c is not a positive integer");
  // Checked before deriving: a hostile header could otherwise make us spin for minutes.
  if (count > maxCount)
    throw new JoseError(
      `JWE asks for ${count} PBES2 iterations, more than the ${maxCount} accepted`,
    );
  if (typeof header.p2s !== "string") throw new JoseError("JWE header has no p2s salt");
  const salt = Buffer.concat([
    Buffer.from(String(header.alg)),
    Buffer.from([0]),
    fromB64url(header.p2s, "JWE p2s"),
  ]);
  const kek = pbkdf2Sync(password, salt, count, alg.keyBytes, alg.hash);
  let cek: Buffer;
  try {
    const unwrap = createDecipheriv(alg.wrap, kek, KEY_WRAP_IV);
    cek = Buffer.concat([
      unwrap.update(fromB64url(wrappedB64, "JWE encrypted key")),
      unwrap.final(),
    ]);
  } catch {
    throw new WrongPasswordError("the key unwrap failed its integrity check (wrong password)");
  }
  if (cek.length !== enc.keyBytes)
    throw new JoseError(
      `JWE content key is ${cek.length} bytes, ${header.enc} needs ${enc.keyBytes}`,
    );
  try {
    const gcm = createDecipheriv(enc.cipher, cek, fromB64url(ivB64, "JWE iv"));
    gcm.setAAD(Buffer.from(headerB64, "ascii"));
    gcm.setAuthTag(fromB64url(tagB64, "JWE tag"));
    return Buffer.concat([gcm.update(fromB64url(cipherB64, "JWE ciphertext")), gcm.final()]);
  } catch {
    throw new WrongPasswordError(
      "the content failed its GCM integrity check (wrong password or a damaged JWE)",
    );
  }
}

export interface SigningJwk {
  key: KeyObject;
  alg: string;
  kid?: string;
}

const SIGNATURE: Record<string, { hash: string | null; p1363: boolean }> = {
  ES256: { hash: "sha256", p1363: true },
  ES384: { hash: "sha384", p1363: true },
  ES512: { hash: "sha512", p1363: true },
  RS256: { hash: "sha256", p1363: false },
  EdDSA: { hash: null, p1363: false },
};

/** The JWS alg a key signs with when its JWK names none (step writes "alg" for its keys). */
function defaultAlg(jwk: JsonWebKey): string | undefined {
  if (jwk.kty === "EC")
    return { "P-256": "ES256", "P-384": "ES384", "P-521": "ES512" }[String(jwk.crv)];
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "RSA") return "RS256";
  return undefined;
}

/** A private JWK (the decrypted provisioner key) as a signing key. */
export function importPrivateJwk(text: Buffer | string): SigningJwk {
  const jwk = parseJsonObject(Buffer.from(text), "the decrypted key") as JsonWebKey & {
    kid?: unknown;
  };
  const alg = typeof jwk.alg === "string" ? jwk.alg : defaultAlg(jwk);
  if (!alg || !SIGNATURE[alg])
    throw new JoseError(
      `key algorithm ${JSON.stringify(jwk.alg ?? jwk.kty)} is not supported for signing tokens`,
    );
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: jwk, format: "jwk" });
  } catch (err) {
    throw new JoseError(`the decrypted key is not a private JWK (${(err as Error).message})`);
  }
  return { key, alg, ...(typeof jwk.kid === "string" ? { kid: jwk.kid } : {}) };
}

export function publicKeyFromJwk(jwk: JsonWebKey): KeyObject {
  return createPublicKey({ key: jwk, format: "jwk" });
}

/** Compact JWS over JSON claims. ECDSA signatures are r||s (JWS), not DER. */
export function signJwt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signer: SigningJwk,
): string {
  const spec = SIGNATURE[signer.alg];
  if (!spec) throw new JoseError(`cannot sign with ${signer.alg}`);
  const input = `${b64url(JSON.stringify({ alg: signer.alg, ...header }))}.${b64url(JSON.stringify(claims))}`;
  const signature = sign(
    spec.hash,
    Buffer.from(input),
    spec.p1363 ? { key: signer.key, dsaEncoding: "ieee-p1363" } : signer.key,
  );
  return `${input}.${b64url(signature)}`;
}

/**
 * Checks a compact JWS signature (tests, and to make sure a decrypted key matches its public half).
 */
export function verifyJwt(token: string, publicKey: KeyObject): boolean {
  const parts = token.split(".");
  if (parts.length !== 3) return false;
  const header = decodeJwtPart(parts[0]!, "JWT header");
  const spec = SIGNATURE[String(header.alg)];
  if (!spec) return false;
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2]!, "base64url");
  return verify(
    spec.hash,
    data,
    spec.p1363 ? { key: publicKey, dsaEncoding: "ieee-p1363" } : publicKey,
    sig,
  );
}

function decodeJwtPart(part: string, what: string): Record<string, unknown> {
  return parseJsonObject(fromB64url(part, what), what);
}

/**
 * The header and claims of a compact JWT, unverified: the node reads its own tokens to route them.
 */
export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  const parts = token.split(".");
  if (parts.length !== 3) throw new JoseError(`not a compact JWT (${parts.length} parts, want 3)`);
  return {
    header: decodeJwtPart(parts[0]!, "JWT header"),
    claims: decodeJwtPart(parts[1]!, "JWT claims"),
  };
}

/** A random token id; step-ca stores it to make the token single use. */
export function randomJti(): string {
  return randomBytes(32).toString("hex");
}
