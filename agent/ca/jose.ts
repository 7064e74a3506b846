// The JOSE that step-ca enrolment needs, through panva's jose (RFC 7515, 7516, 7518, 7519; no
// dependencies): decrypting a JWK provisioner's encryptedKey (compact JWE, PBES2 + AES key wrap +
// AES-GCM, as `step ca init` writes it) and signing one-time tokens (compact JWS). jose is loaded
// on first use (loadJose), so the runs that never mint a token (CFSSL, status, renew with nothing
// due) do not pay for it; only its small JWT decoder is part of every start (decodeJwt below).
import { randomBytes, type JsonWebKey, type KeyObject } from "node:crypto";
import { decodeJwt as decodeJwtClaims } from "jose/jwt/decode";
import { decodeProtectedHeader } from "jose/decode/protected_header";

type Jose = typeof import("jose");
let jose: Promise<Jose> | undefined;
/** panva's jose, imported once on first use. */
export const loadJose = (): Promise<Jose> => (jose ??= import("jose"));

/** PBES2 iterations a JWE may ask for; step uses 100,000, and each one costs us CPU time. */
export const MAX_PBES2_COUNT = 1_000_000;

export class JoseError extends Error {}

export class WrongPasswordError extends JoseError {}

/** The password-based key management and the content encryption `step ca init` may use. */
const PBES2_ALGS = ["PBES2-HS256+A128KW", "PBES2-HS384+A192KW", "PBES2-HS512+A256KW"];
const GCM_ENCS = ["A128GCM", "A192GCM", "A256GCM"];

/** A compact JWS/JWE's protected header, or a JoseError saying why not. */
function protectedHeader(compact: string, what: string): Record<string, unknown> {
  try {
    return decodeProtectedHeader(compact) as Record<string, unknown>;
  } catch (err) {
    throw new JoseError(`${what}: ${(err as Error).message}`);
  }
}

/**
 * Decrypts a compact JWE made with a password (PBES2-HS*+A*KW, A*GCM), as `step ca init` encrypts
 * a provisioner key. Throws WrongPasswordError when the key unwrap or the GCM tag does not verify.
 */
export async function decryptPbes2Jwe(
  compact: string,
  password: string,
  maxCount = MAX_PBES2_COUNT,
): Promise<Buffer> {
  const text = compact.trim();
  const parts = text.split(".").length;
  if (parts !== 5) throw new JoseError(`not a compact JWE (${parts} parts, want 5)`);
  const header = protectedHeader(text, "JWE header");
  if (!PBES2_ALGS.includes(String(header.alg)))
    throw new JoseError(
      `JWE alg ${JSON.stringify(header.alg)} is not supported (want PBES2-HS256+A128KW or another PBES2 variant)`,
    );
  // jose refuses it too (maxPBES2Count), with a message that does not say how many were asked.
  if (typeof header.p2c === "number" && header.p2c > maxCount)
    throw new JoseError(
      `JWE asks for ${header.p2c} PBES2 iterations, more than the ${maxCount} accepted`,
    );
  const { compactDecrypt, errors } = await loadJose();
  try {
    const { plaintext } = await compactDecrypt(text, new TextEncoder().encode(password), {
      keyManagementAlgorithms: PBES2_ALGS,
      contentEncryptionAlgorithms: GCM_ENCS,
      maxPBES2Count: maxCount,
    });
    return Buffer.from(plaintext);
  } catch (err) {
    // The RFC 3394 key unwrap or the GCM tag failed; jose does not say which (RFC 7516 11.5).
    if (err instanceof errors.JWEDecryptionFailed)
      throw new WrongPasswordError(
        "the key unwrap or the content failed its integrity check (wrong password, or a damaged encryptedKey)",
      );
    if (err instanceof errors.JOSEError) throw new JoseError(err.message);
    throw err;
  }
}

/** A private key for signing tokens: jose's CryptoKey (importJWK) or a node:crypto KeyObject. */
export interface SigningJwk {
  key: CryptoKey | KeyObject;
  alg: string;
  kid?: string;
}

/** The JWS alg a key signs with when its JWK names none (step writes "alg" for its keys). */
function defaultAlg(jwk: JsonWebKey): string | undefined {
  if (jwk.kty === "EC")
    return { "P-256": "ES256", "P-384": "ES384", "P-521": "ES512" }[String(jwk.crv)];
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "RSA") return "RS256";
  return undefined;
}

const SIGNING_ALGS = ["ES256", "ES384", "ES512", "RS256", "EdDSA"];

type Jwk = JsonWebKey & { kid?: string };

function parseJwk(text: Buffer | string): Jwk {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(text).toString("utf8"));
  } catch {
    throw new JoseError("the decrypted key is not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new JoseError("the decrypted key is not a JSON object");
  const jwk = v as JsonWebKey & { kid?: unknown };
  const { kid, ...rest } = jwk;
  return { ...rest, ...(typeof kid === "string" ? { kid } : {}) };
}

/**
 * A private JWK (the decrypted provisioner key) as a signing key, and the RFC 7638 thumbprint of
 * its public half (to check it against the provisioner's published key).
 */
export async function importPrivateJwk(
  text: Buffer | string,
): Promise<SigningJwk & { thumbprint: string }> {
  const jwk = parseJwk(text);
  const alg = typeof jwk.alg === "string" ? jwk.alg : defaultAlg(jwk);
  if (!alg || !SIGNING_ALGS.includes(alg))
    throw new JoseError(
      `key algorithm ${JSON.stringify(jwk.alg ?? jwk.kty)} is not supported for signing tokens`,
    );
  if (typeof jwk.d !== "string") throw new JoseError("the decrypted key is not a private JWK");
  const { importJWK } = await loadJose();
  let key: CryptoKey;
  try {
    key = (await importJWK(jwk, alg)) as CryptoKey;
  } catch (err) {
    throw new JoseError(`the decrypted key is not a private JWK (${(err as Error).message})`);
  }
  return {
    key,
    alg,
    thumbprint: await jwkThumbprint(jwk),
    ...(jwk.kid !== undefined ? { kid: jwk.kid } : {}),
  };
}

/**
 * RFC 7638 thumbprint (SHA-256) of a JWK's public members: equal for a private key and its public
 * half, and what step uses as a provisioner's kid.
 */
export async function jwkThumbprint(jwk: Jwk): Promise<string> {
  const { calculateJwkThumbprint } = await loadJose();
  try {
    return await calculateJwkThumbprint(jwk);
  } catch (err) {
    throw new JoseError(`not a usable JWK (${(err as Error).message})`);
  }
}

/** Compact JWS over JSON claims, header {alg, ...header}. */
export async function signJwt(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signer: SigningJwk,
): Promise<string> {
  const { SignJWT } = await loadJose();
  return new SignJWT(claims).setProtectedHeader({ alg: signer.alg, ...header }).sign(signer.key);
}

/**
 * The header and claims of a compact JWT, unverified: the node reads its own tokens to route them.
 * jose's decoders, imported statically (a few kB): the token file is checked with the other
 * secrets before any request, where nothing may wait for an import.
 */
export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  const parts = token.split(".").length;
  if (parts !== 3) throw new JoseError(`not a compact JWT (${parts} parts, want 3)`);
  try {
    return {
      header: decodeProtectedHeader(token) as Record<string, unknown>,
      claims: decodeJwtClaims(token) as Record<string, unknown>,
    };
  } catch (err) {
    throw new JoseError((err as Error).message);
  }
}

/** A random token id; step-ca stores it to make the token single use. */
export function randomJti(): string {
  return randomBytes(32).toString("hex");
}
