// In-process certificates for unit tests of the verifier and the status code (the end-to-end tests
// use a real CFSSL instead).
import { webcrypto } from "node:crypto";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface TestCa {
  cert: x509.X509Certificate;
  pem: string;
  keys: CryptoKeyPair;
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

export async function makeCa(cn: string, parent?: TestCa): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const now = Date.now();
  const extensions = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  ];
  const cert = parent
    ? await x509.X509CertificateGenerator.create({
        serialNumber: "0a",
        subject: `CN=${cn}`,
        issuer: parent.cert.subject,
        notBefore: new Date(now - 3600_000),
        notAfter: new Date(now + 10 * 365 * 86400_000),
        signingAlgorithm: ALG,
        publicKey: keys.publicKey,
        signingKey: parent.keys.privateKey,
        extensions,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: "01",
        name: `CN=${cn}`,
        notBefore: new Date(now - 3600_000),
        notAfter: new Date(now + 10 * 365 * 86400_000),
        signingAlgorithm: ALG,
        keys,
        extensions,
      });
  return { cert, pem: cert.toString("pem") + "\n", keys };
}

export interface LeafOptions {
  publicKey: CryptoKey;
  cn: string;
  /** More CN attributes after `cn`, each in its own RDN. */
  extraCns?: string[];
  o?: string[];
  dns?: string[];
  ips?: string[];
  uris?: string[];
  ekus?: string[];
  /** x509.KeyUsageFlags bits; default: no keyUsage extension. */
  keyUsage?: number;
  notBefore?: Date;
  notAfter?: Date;
  isCa?: boolean;
}

export async function issueLeaf(ca: TestCa, o: LeafOptions): Promise<string> {
  const now = Date.now();
  const name: x509.JsonName = [
    ...(o.o ?? []).map((v) => ({ O: [v] })),
    ...[o.cn, ...(o.extraCns ?? [])].map((v) => ({ CN: [v] })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(Boolean(o.isCa), undefined, true),
  ];
  if (o.keyUsage !== undefined) extensions.push(new x509.KeyUsagesExtension(o.keyUsage, true));
  const alt = [
    ...(o.dns ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(o.ips ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(o.uris ?? []).map((value) => ({ type: "url" as const, value })),
  ];
  if (alt.length) extensions.push(new x509.SubjectAlternativeNameExtension(alt));
  if (o.ekus) extensions.push(new x509.ExtendedKeyUsageExtension(o.ekus));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Math.floor(Math.random() * 1e9)
      .toString(16)
      .padStart(8, "0"),
    subject: new x509.Name(name),
    issuer: ca.cert.subject,
    notBefore: o.notBefore ?? new Date(now - 60_000),
    notAfter: o.notAfter ?? new Date(now + 365 * 86400_000),
    signingAlgorithm: ALG,
    publicKey: o.publicKey,
    signingKey: ca.keys.privateKey,
    extensions,
  });
  return cert.toString("pem") + "\n";
}
