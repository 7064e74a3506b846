// Certificate parsing (node:crypto, fast to load) and the checks shared by verification, status and
// renewal.
import { createHash, X509Certificate } from "node:crypto";
import { ipFamily } from "../common/ip.js";

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
    if (m[1] === "CERTIFICATE")
      out.push(
        `-----BEGIN CERTIFICATE-----\n${wrap64(m[2]!.replace(/[\r\n]/g, ""))}-----END CERTIFICATE-----\n`,
      );
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
  const node = new X509Certificate(pem);
  const subject = parseDn(node.subject);
  const sans = parseSubjectAltName(node.subjectAltName);
  // node:crypto's `keyUsage` is the list of extended key usage OIDs.
  const ekuOids = node.keyUsage ?? [];
  const ekus = (Object.keys(EKU_OIDS) as Eku[]).filter((k) => ekuOids.includes(EKU_OIDS[k]));
  const info: Omit<CertInfo, "spki"> = {
    pem: derToPem(node.raw),
    der: node.raw,
    node,
    commonName: subject.get("CN")?.[0] ?? "",
    organizations: subject.get("O") ?? [],
    dnsNames: sans.dns.map((d) => d.toLowerCase()),
    ips: sans.ips.map(normalizeIp),
    ekus,
    isCa: node.ca,
    notBefore: new Date(node.validFrom),
    notAfter: new Date(node.validTo),
    serial: node.serialNumber.toLowerCase(),
    issuerCommonName: parseDn(node.issuer).get("CN")?.[0] ?? "",
  };
  // The key is decoded now (a certificate whose key does not decode fails here, as parsing), but
  // exported on first use: renew with nothing due parses every installed certificate, needs few
  // keys.
  const publicKey = node.publicKey;
  let spki: Buffer | undefined;
  return Object.defineProperty(info, "spki", {
    get: () => (spki ??= publicKey.export({ format: "der", type: "spki" })),
    enumerable: true,
  }) as CertInfo;
}

/**
 * node:crypto's multi-line distinguished name ("O=system:nodes\nCN=system:node:w1", RFC 2253
 * escapes).
 */
export function parseDn(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq);
    const value = line
      .slice(eq + 1)
      .replace(/\\([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
      .replace(/\\(.)/g, "$1");
    out.set(key, [...(out.get(key) ?? []), value]);
  }
  return out;
}

/**
 * node:crypto's subjectAltName text ("DNS:a, IP Address:10.0.0.1"; entries with commas are
 * JSON-quoted).
 */
export function parseSubjectAltName(text: string | undefined): { dns: string[]; ips: string[] } {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const entry of text?.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? []) {
    const e = entry.trim();
    const colon = e.indexOf(":");
    if (colon < 0) continue;
    const type = e.slice(0, colon);
    let value = e.slice(colon + 1);
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (type === "DNS") dns.push(value);
    else if (type === "IP Address") ips.push(value);
  }
  return { dns, ips };
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
export function buildChain(
  leaf: CertInfo,
  intermediates: CertInfo[],
  anchors: CertInfo[],
): CertInfo[] | undefined {
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

/**
 * Canonical text of an IP address (IPv6 compressed and lower-case), so SAN comparisons are exact.
 */
export function normalizeIp(ip: string): string {
  const kind = ipFamily(ip);
  if (kind === 4) return ip;
  if (kind !== 6) return ip;
  let text = ip.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split(".").map(Number);
    text =
      text.slice(0, -v4[1]!.length) +
      `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups =
    tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  const parts = groups.map((g) => parseInt(g || "0", 16).toString(16));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
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
