// Certificate parsing and the checks shared by verification, status and renewal.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, webcrypto, X509Certificate } from "node:crypto";
import { isIP } from "node:net";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

export const EKU_OIDS = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;
export type Eku = keyof typeof EKU_OIDS;

export interface CertInfo {
  readonly pem: string;
  readonly der: Buffer;
  readonly node: X509Certificate;
  readonly commonName: string;
  readonly organizations: string[];
  readonly dnsNames: string[];
  readonly ips: string[];
  readonly ekus: Eku[];
  readonly isCa: boolean;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serial: string;
  readonly issuerCommonName: string;
  readonly spki: Buffer;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----/g;

/** The CERTIFICATE blocks of a PEM text, in order. Throws on text that holds none. */
export function splitPemCertificates(text: string, what = "PEM"): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (m[1] === "CERTIFICATE") out.push(`-----BEGIN CERTIFICATE-----\n${wrap64(m[2]!.replace(/[\r\n]/g, ""))}-----END CERTIFICATE-----\n`);
  }
  if (out.length === 0) throw new Error(`${what} holds no PEM certificate`);
  return out;
}

function wrap64(b64: string): string {
  return (b64.match(/.{1,64}/g) ?? []).map((l) => `${l}\n`).join("");
}

export function derToPem(der: Uint8Array, label = "CERTIFICATE"): string {
  return `-----BEGIN ${label}-----\n${wrap64(Buffer.from(der).toString("base64"))}-----END ${label}-----\n`;
}

export function parseCert(pem: string): CertInfo {
  const cert = new x509.X509Certificate(pem);
  const node = new X509Certificate(pem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.items ?? [];
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const ekuOids = (eku?.usages ?? []).map(String);
  const ekus = (Object.keys(EKU_OIDS) as Eku[]).filter((k) => ekuOids.includes(EKU_OIDS[k]));
  return {
    pem: derToPem(new Uint8Array(cert.rawData)),
    der: Buffer.from(cert.rawData),
    node,
    commonName: cert.subjectName.getField("CN")[0] ?? "",
    organizations: cert.subjectName.getField("O"),
    dnsNames: names.filter((n) => n.type === "dns").map((n) => n.value.toLowerCase()),
    ips: names.filter((n) => n.type === "ip").map((n) => normalizeIp(n.value)),
    ekus,
    isCa: cert.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    serial: cert.serialNumber.toLowerCase(),
    issuerCommonName: cert.issuerName.getField("CN")[0] ?? "",
    spki: Buffer.from(cert.publicKey.rawData),
  };
}

/** kubeadm's CA pin: "sha256:" + hex SHA-256 of the DER SubjectPublicKeyInfo. */
export function spkiPin(spki: Buffer): string {
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

export function certPin(cert: CertInfo): string {
  return spkiPin(cert.spki);
}

/** step's fingerprint: hex SHA-256 of the whole certificate DER. */
export function certFingerprint(cert: CertInfo): string {
  return createHash("sha256").update(cert.der).digest("hex");
}

const PIN_FORMAT = /^sha256:[0-9a-f]{64}$/;
export function isPin(value: string): boolean {
  return PIN_FORMAT.test(value);
}

/** True if `child` names `parent` as issuer and carries a valid signature by parent's key. */
export function issuedBy(child: CertInfo, parent: CertInfo): boolean {
  try {
    return child.node.checkIssued(parent.node) && child.node.verify(parent.node.publicKey);
  } catch {
    return false;
  }
}

/**
 * Follows issuer links from `leaf` through `intermediates` up to one of `anchors`.
 * Returns the path (leaf first, anchor last) or undefined when there is none.
 */
export function buildChain(leaf: CertInfo, intermediates: CertInfo[], anchors: CertInfo[]): CertInfo[] | undefined {
  const path: CertInfo[] = [leaf];
  let current = leaf;
  for (let depth = 0; depth < 8; depth++) {
    const anchor = anchors.find((a) => a.der.equals(current.der) || issuedBy(current, a));
    if (anchor) {
      if (!anchor.der.equals(current.der)) path.push(anchor);
      return path;
    }
    const next = intermediates.find((c) => !path.includes(c) && c.isCa && issuedBy(current, c));
    if (!next) return undefined;
    path.push(next);
    current = next;
  }
  return undefined;
}

/** Canonical text of an IP address (IPv6 compressed and lower-case), so SAN comparisons are exact. */
export function normalizeIp(ip: string): string {
  const kind = isIP(ip);
  if (kind === 4) return ip;
  if (kind !== 6) return ip;
  let text = ip.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split(".").map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const parts = groups.map((g) => parseInt(g || "0", 16).toString(16));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return parts.join(":");
  return `${parts.slice(0, bestStart).join(":")}::${parts.slice(bestStart + bestLen).join(":")}`;
}
