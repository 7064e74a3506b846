// x5c tokens (RFC 7515 4.1.6): a JWT signed by a certificate's key, with the certificate chain in
// its header. step-ca takes one to renew without mTLS (step-ca 0.19 api/renew.go,
// authority.AuthorizeRenewToken; `step ca renew --mtls=false`) and to enrol with an X5C provisioner
// (authority/provisioner/x5c.go). Signed by panva's jose, loaded only when a token is made, so the
// paths that never mint one (CFSSL, status, renew with nothing due) do not pay for it; or, for a
// key jose cannot hold (the machine key in the TPM), assembled here as a compact JWS (RFC 7515
// 7.1) around the signer's ES256 signature.
import type { KeyObject } from "node:crypto";
import { JoseError, loadJose, randomJti } from "./jose.js";

export { loadJose };

/**
 * The JWS algorithm step signs with for a key (go.step.sm/crypto/jose: ES256/384/512 by curve,
 * RS256 for RSA, EdDSA for Ed25519).
 */
export function jwsAlgorithm(key: KeyObject): string {
  const d = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case "ec": {
      const alg = { prime256v1: "ES256", secp384r1: "ES384", secp521r1: "ES512" }[
        d?.namedCurve ?? ""
      ];
      if (!alg) throw new JoseError(`cannot sign with EC curve ${d?.namedCurve ?? "unknown"}`);
      return alg;
    }
    case "rsa":
      return "RS256";
    case "ed25519":
      return "EdDSA";
    default:
      throw new JoseError(`cannot sign with a ${key.asymmetricKeyType ?? "unknown"} key`);
  }
}

/**
 * A key that signs where it lives (the TPM: tpm/tpm.ts sign(..., "jose")): the JWS signature of
 * the signing input, for ES256 r‖s (RFC 7518 3.4).
 */
export interface JwsSigner {
  alg: "ES256";
  sign(signingInput: Buffer): Promise<Buffer>;
}

const isSigner = (k: KeyObject | JwsSigner): k is JwsSigner =>
  typeof (k as Partial<JwsSigner>).sign === "function";

export interface X5cTokenRequest {
  /** The certificate chain, leaf first, DER; the leaf's key is `key`. */
  chainDer: Buffer[];
  key: KeyObject | JwsSigner;
  /** iss: the provisioner name step-ca looks the token up by. */
  issuer: string;
  /** sub: the certificate's CN (renewal) or the CN asked for (enrolment). */
  subject: string;
  /** aud: the endpoint URL(s) the token is for, e.g. https://ca:9000/1.0/renew. */
  audience: string | string[];
  /** Seconds since the epoch (the run's clock). */
  now: number;
  lifetimeS: number;
  /** Further claims (X5C enrolment: sans). */
  extra?: Record<string, unknown>;
  /**
   * The header carrying the chain: "x5c" (default; X5C enrolment) or "x5cInsecure", which step-ca's
   * renew token takes (go.step.sm/crypto/jose ParseX5cInsecure: the chain is verified as of the
   * leaf's NotAfter, so an expired certificate can still sign it).
   */
  chainHeader?: "x5c" | "x5cInsecure";
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString("base64url");

/**
 * The token's protected header and claims, the same whichever key signs them (RFC 7519 4.1: iss,
 * sub, aud, iat, nbf, exp, a one-time jti).
 */
function x5cJwt(
  r: X5cTokenRequest,
  alg: string,
): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  if (r.chainDer.length === 0) throw new JoseError("x5c token: no certificate");
  return {
    header: {
      alg,
      typ: "JWT",
      [r.chainHeader ?? "x5c"]: r.chainDer.map((d) => d.toString("base64")),
    },
    claims: {
      ...r.extra,
      iss: r.issuer,
      sub: r.subject,
      aud: r.audience,
      iat: r.now,
      nbf: r.now,
      exp: r.now + r.lifetimeS,
      jti: randomJti(),
    },
  };
}

/** A one-time (random jti) compact JWT with the x5c header, signed by the leaf's key. */
export async function signX5cToken(r: X5cTokenRequest): Promise<string> {
  const key = r.key;
  if (isSigner(key)) {
    const { header, claims } = x5cJwt(r, key.alg);
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(await key.sign(Buffer.from(input, "ascii")))}`;
  }
  const { header, claims } = x5cJwt(r, jwsAlgorithm(key));
  const { SignJWT } = await loadJose();
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key);
}
