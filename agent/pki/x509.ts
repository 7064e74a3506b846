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
  /** The first CN (for messages); `commonNames` has them all. */
  readonly commonName: string;
  /**
   * Every CN attribute of the subject, in order. More than one is ambiguous: readers disagree on
   * which counts (Go's crypto/x509, hence the API server, takes the last).
   */
  readonly commonNames: string[];
  readonly organizations: string[];
  readonly dnsNames: string[];
  readonly ips: string[];
  readonly uris: string[];
  readonly emails: string[];
  /** SAN entries of other types (otherName, directoryName, registeredID), as node prints them. */
  readonly otherSans: string[];
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
  if (out.length === 0)
    throw new Error(
      text.includes("-----BEGIN CERTIFICATE-----")
        ? `${what} holds a truncated PEM certificate`
        : `${what} holds no PEM certificate`,
    );
  return out;
}

function wrap64(b64: string): string {
  return (b64.match(/.{1,64}/g) ?? []).map((l) => `${l}\n`).join("");
}

export function derToPem(der: Uint8Array, label = "CERTIFICATE"): string {
  return `-----BEGIN ${label}-----\n${wrap64(Buffer.from(der).toString("base64"))}-----END ${label}-----\n`;
}

// A run reads the same installed certificates more than once (the clock's floor, the assessment,
// the metrics textfile, status): each distinct PEM text is parsed once per process. A CertInfo is
// read-only, and a changed file is another text, parsed anew.
const parsed = new Map<string, CertInfo>();
const PARSED_MAX = 256;

export function parseCert(pem: string): CertInfo {
  const done = parsed.get(pem);
  if (done) return done;
  const info = parseCertText(pem);
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(pem, info);
  return info;
}

function parseCertText(pem: string): CertInfo {
  const node = new X509Certificate(pem);
  const subject = parseDn(node.subject);
  const sans = parseSubjectAltName(node.subjectAltName);
  // node:crypto's `keyUsage` is the list of extended key usage OIDs.
  const ekuOids = node.keyUsage ?? [];
  const ekus = (Object.keys(EKU_OIDS) as Eku[]).filter((k) => ekuOids.includes(EKU_OIDS[k]));
  const commonNames = subject.get("CN") ?? [];
  const info: Omit<CertInfo, "spki"> = {
    pem: derToPem(node.raw),
    der: node.raw,
    node,
    commonName: commonNames[0] ?? "",
    commonNames,
    organizations: subject.get("O") ?? [],
    dnsNames: sans.dns.map((d) => d.toLowerCase()),
    ips: sans.ips.map(normalizeIp),
    uris: sans.uris,
    emails: sans.emails,
    otherSans: sans.other,
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
 * node:crypto's multi-line distinguished name ("O=system:nodes\nCN=system:node:w1"): one RDN a
 * line, the attributes of a multi-valued RDN joined by " + ", values with RFC 2253 escapes (a "+",
 * "," or "\\" in a value is escaped, so an unescaped " + " always separates attributes).
 */
export function parseDn(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (attr: string) => {
    const eq = attr.indexOf("=");
    if (eq <= 0) return;
    const key = attr.slice(0, eq);
    const value = attr
      .slice(eq + 1)
      .replace(/\\([0-9A-Fa-f]{2}|.)/g, (_, e: string) =>
        e.length === 2 ? String.fromCharCode(parseInt(e, 16)) : e,
      );
    out.set(key, [...(out.get(key) ?? []), value]);
  };
  for (const line of text.split("\n")) {
    let start = 0;
    for (let i = 0; i < line.length; i++) {
      if (line[i] === "\\") i++;
      else if (line.startsWith(" + ", i)) {
        add(line.slice(start, i));
        start = i + 3;
        i += 2;
      }
    }
    add(line.slice(start));
  }
  return out;
}

export interface SubjectAltNames {
  dns: string[];
  ips: string[];
  uris: string[];
  emails: string[];
  /** Entries of any other type, "type:value" as node prints them. */
  other: string[];
}

/**
 * node:crypto's subjectAltName text ("DNS:a, IP Address:10.0.0.1, URI:x, email:y"; entries with
 * commas are JSON-quoted).
 */
export function parseSubjectAltName(text: string | undefined): SubjectAltNames {
  const out: SubjectAltNames = { dns: [], ips: [], uris: [], emails: [], other: [] };
  for (const entry of text?.match(/(?:[^,"]|"(?:[^"\\]|\\.)*")+/g) ?? []) {
    const e = entry.trim();
    const colon = e.indexOf(":");
    if (colon < 0) {
      if (e) out.other.push(e);
      continue;
    }
    const type = e.slice(0, colon);
    let value = e.slice(colon + 1);
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        out.other.push(e);
        continue;
      }
    }
    if (type === "DNS") out.dns.push(value);
    else if (type === "IP Address") out.ips.push(value);
    else if (type === "URI") out.uris.push(value);
    else if (type === "email") out.emails.push(value);
    else out.other.push(`${type}:${value}`);
  }
  return out;
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
