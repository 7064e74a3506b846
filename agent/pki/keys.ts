import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  KeyObject,
  webcrypto,
} from "node:crypto";
import { promisify } from "node:util";

const generateKeyPairAsync = promisify(generateKeyPair);

export const KEY_ALGORITHMS = [
  "ecdsa-p256",
  "ecdsa-p384",
  "rsa-2048",
  "rsa-3072",
  "rsa-4096",
] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

export function isKeyAlgorithm(value: string): value is KeyAlgorithm {
  return (KEY_ALGORITHMS as readonly string[]).includes(value);
}

export interface NodeKey {
  readonly algorithm: KeyAlgorithm;
  readonly privateKey: KeyObject;
  /** PEM as kubeadm writes it: PKCS#1 "RSA PRIVATE KEY" or SEC1 "EC PRIVATE KEY". */
  readonly pem: string;
}

export async function generateKey(algorithm: KeyAlgorithm): Promise<NodeKey> {
  const { privateKey } =
    algorithm === "ecdsa-p256" || algorithm === "ecdsa-p384"
      ? await generateKeyPairAsync("ec", {
          namedCurve: algorithm === "ecdsa-p256" ? "prime256v1" : "secp384r1",
        })
      : await generateKeyPairAsync("rsa", { modulusLength: Number(algorithm.slice(4)) });
  return { algorithm, privateKey, pem: privateKeyPem(privateKey) };
}

export function privateKeyPem(key: KeyObject): string {
  const type = key.asymmetricKeyType === "rsa" ? "pkcs1" : "sec1";
  return key.export({ format: "pem", type }).toString();
}

/** Parses a PEM private key (PKCS#1, SEC1 or PKCS#8) and tells its node-join algorithm name. */
export function loadKey(pem: string): NodeKey {
  const privateKey = createPrivateKey(pem);
  return { algorithm: algorithmOf(privateKey), privateKey, pem: privateKeyPem(privateKey) };
}

export function algorithmOf(key: KeyObject): KeyAlgorithm {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "ec") {
    if (details.namedCurve === "prime256v1") return "ecdsa-p256";
    if (details.namedCurve === "secp384r1") return "ecdsa-p384";
  } else if (key.asymmetricKeyType === "rsa") {
    const bits = details.modulusLength;
    if (bits === 2048 || bits === 3072 || bits === 4096) return `rsa-${bits}`;
  }
  throw new Error(`unsupported key type ${describeKey(key)}`);
}

/**
 * Why an installed key is not of the configured algorithm ("ecdsa-p256 -> rsa-2048"); undefined
 * when it is. A key of a type node-join does not make is named as `status` names it.
 */
export function keyAlgorithmChange(keyPem: string, wanted: KeyAlgorithm): string | undefined {
  const key = createPrivateKey(keyPem);
  let have: string;
  try {
    have = algorithmOf(key);
  } catch {
    have = describeKey(key);
  }
  return have === wanted ? undefined : `${have} -> ${wanted}`;
}

/** Human-readable key type, as `status` prints it. */
export function describeKey(key: KeyObject): string {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "ec") {
    const curve = { prime256v1: "P-256", secp384r1: "P-384", secp521r1: "P-521" }[
      String(details.namedCurve)
    ];
    return `ECDSA ${curve ?? String(details.namedCurve)}`;
  }
  if (key.asymmetricKeyType === "rsa") return `RSA ${details.modulusLength ?? "?"}`;
  return String(key.asymmetricKeyType).toUpperCase();
}

/** DER SubjectPublicKeyInfo of a private or public key: the identity compared everywhere. */
export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return pub.export({ format: "der", type: "spki" });
}

export interface WebCryptoKeyPair {
  privateKey: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
}

/** The same key as WebCrypto keys, which @peculiar/x509 signs with. */
export async function toWebCrypto(key: NodeKey): Promise<WebCryptoKeyPair> {
  const algorithm = webAlgorithm(key.algorithm);
  const subtle = webcrypto.subtle;
  const pkcs8 = key.privateKey.export({ format: "der", type: "pkcs8" });
  const privateKey = await subtle.importKey("pkcs8", pkcs8, algorithm, false, ["sign"]);
  const publicKey = await subtle.importKey("spki", spkiDer(key.privateKey), algorithm, true, [
    "verify",
  ]);
  return { privateKey, publicKey };
}

export function webAlgorithm(
  algorithm: KeyAlgorithm,
): webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams {
  switch (algorithm) {
    case "ecdsa-p256":
      return { name: "ECDSA", namedCurve: "P-256" };
    case "ecdsa-p384":
      return { name: "ECDSA", namedCurve: "P-384" };
    default:
      return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  }
}

/** The signature algorithm used for CSRs made with this key. */
export function signingAlgorithm(
  algorithm: KeyAlgorithm,
): webcrypto.EcdsaParams | webcrypto.Algorithm {
  switch (algorithm) {
    case "ecdsa-p256":
      return { name: "ECDSA", hash: "SHA-256" } as webcrypto.EcdsaParams;
    case "ecdsa-p384":
      return { name: "ECDSA", hash: "SHA-384" } as webcrypto.EcdsaParams;
    default:
      return { name: "RSASSA-PKCS1-v1_5" };
  }
}
