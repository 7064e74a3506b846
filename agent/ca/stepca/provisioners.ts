// The CA's provisioners (GET /provisioners, smallstep/certificates api/api.go) and the JWK
// provisioner's key, decrypted with its password (authority/provisioner/jwk.go: the encryptedKey
// is a PBES2 JWE), which signs the one-time tokens node-join mints.
import type { JsonWebKey } from "node:crypto";
import { CaRefusedError, UsageError } from "../../common/errors.js";
import type { CertTemplate } from "../../pki/certs.js";
import type { TlsTrust } from "../http.js";
import {
  decryptPbes2Jwe,
  importPrivateJwk,
  JoseError,
  jwkThumbprint,
  randomJti,
  signJwt,
  WrongPasswordError,
  type SigningJwk,
} from "../jose.js";
import { isObject, type StepCaClient } from "./client.js";
import { tokenSans } from "./sans.js";

/** Lifetime of the tokens node-join mints: `step ca token`'s default. */
export const TOKEN_LIFETIME_S = 300;
/** /provisioners is paged; a CA with more pages than this is answering nonsense. */
const MAX_PROVISIONER_PAGES = 50;

export interface JwkProvisioner {
  name: string;
  key: JsonWebKey & { kid?: string };
  encryptedKey?: string;
}

export interface ProvisionerKey {
  name: string;
  signer: SigningJwk;
}

/** Every provisioner the CA lists (GET /provisioners, all pages), as it lists them. */
export async function listProvisioners(
  client: StepCaClient,
  tls: TlsTrust | undefined,
): Promise<unknown[]> {
  const out: unknown[] = [];
  let cursor = "";
  for (let page = 0; page < MAX_PROVISIONER_PAGES; page++) {
    const path = `/provisioners${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`;
    const { answer } = await client.call({
      method: "GET",
      path,
      tls,
      what: "provisioners",
      unauthorized: "HTTP 401",
    });
    if (Array.isArray(answer.provisioners)) out.push(...(answer.provisioners as unknown[]));
    cursor = typeof answer.nextCursor === "string" ? answer.nextCursor : "";
    if (!cursor) break;
  }
  return out;
}

export function jwkProvisionersOf(list: unknown[]): JwkProvisioner[] {
  const out: JwkProvisioner[] = [];
  for (const p of list) {
    if (isObject(p) && p.type === "JWK" && typeof p.name === "string" && isObject(p.key)) {
      out.push({
        name: p.name,
        key: p.key as JwkProvisioner["key"],
        ...(typeof p.encryptedKey === "string" ? { encryptedKey: p.encryptedKey } : {}),
      });
    }
  }
  return out;
}

/** The provisioner's private key, checked to be the half of the key it publishes. */
export async function decryptKey(
  p: JwkProvisioner,
  pw: string,
  description: string,
  prefix: string,
  passwordSource: string,
): Promise<SigningJwk> {
  if (!p.encryptedKey) {
    throw new CaRefusedError(
      `${description}: JWK provisioner "${p.name}" publishes no encryptedKey: mint tokens elsewhere (step ca token) and give them with --${prefix}ca-token-file`,
    );
  }
  let signer: SigningJwk & { thumbprint: string };
  try {
    signer = await importPrivateJwk(await decryptPbes2Jwe(p.encryptedKey, pw));
  } catch (err) {
    if (err instanceof WrongPasswordError) {
      throw new UsageError(
        `${description}: cannot decrypt the key of provisioner "${p.name}" with the password from ${passwordSource}: wrong password (${err.message}); no CSR was sent`,
      );
    }
    if (err instanceof JoseError)
      throw new CaRefusedError(
        `${description}: the encrypted key of provisioner "${p.name}": ${err.message}`,
      );
    throw err;
  }
  // RFC 7638 thumbprints cover the public members only: equal iff the two halves match.
  const published = await jwkThumbprint(p.key).catch(() => undefined);
  if (signer.thumbprint !== published) {
    throw new CaRefusedError(
      `${description}: the decrypted key of provisioner "${p.name}" is not the private half of its public key`,
    );
  }
  const { key, alg, kid } = signer;
  return { key, alg, ...(p.key.kid ? { kid: p.key.kid } : kid ? { kid } : {}) };
}

/**
 * A token for the server at `base` (step-ca checks the audience against its own URL), for the
 * root of fingerprint `sha`, at `now` (seconds).
 */
export function mintToken(
  k: ProvisionerKey,
  template: CertTemplate,
  base: string,
  sha: string,
  now: number,
): Promise<string> {
  const claims = {
    aud: [`${base}/1.0/sign`],
    sub: template.commonName,
    iss: k.name,
    // Never empty: step-ca would take [sub] (stepCaRequestedSans says what that becomes).
    sans: tokenSans(template),
    iat: now,
    nbf: now,
    exp: now + TOKEN_LIFETIME_S,
    jti: randomJti(),
    sha,
  };
  return signJwt({ kid: k.signer.kid, typ: "JWT" }, claims, k.signer);
}
