// Certification path validation (RFC 5280 section 6) of a CA's answer, from the leaf to the pinned
// anchor, before anything is written. What the kubelet and the API server (Go's crypto/x509) and
// OpenSSL (`openssl verify -x509_strict -auth_level 2 -purpose sslserver|sslclient`) would refuse,
// node-join refuses here, instead of installing a certificate that fails later.
//
// pkijs's CertificateChainValidationEngine is the validator: it builds the path, checks the
// signatures (here with node:crypto, which knows every algorithm Go and OpenSSL do), name chaining,
// the validity of every certificate, that every issuer is a CA whose keyUsage allows keyCertSign,
// certificate policies and name constraints. Its engine (3.4) leaves out what is checked here
// besides, each with its source: pathLenConstraint (RFC 5280 6.1.4 (l), (m)), the trust anchor's
// own name constraints and the intersection of permitted subtrees along the path (6.1.4 (g)),
// unrecognised critical extensions (6.1.4 (o)), extended key usage of the CAs (Go's
// checkChainForKeyUsage, OpenSSL's check_purpose), what a leaf may be, and the strength of every
// signature and key (OpenSSL security level 2; Go refuses SHA-1 since 1.18).
//
// pkijs (and its ASN.1 parser) costs about 20 ms of a join to load, even with its code cache in the
// single binary, so it is imported on first use: `renew` with nothing due never validates a path.
import { webcrypto, type X509Certificate } from "node:crypto";
import type * as Pkijs from "pkijs";
import { EKU_OIDS, normalizeIp, type CertInfo, type Eku } from "./x509.js";

let loaded: Promise<typeof Pkijs> | undefined;

function pkijs(): Promise<typeof Pkijs> {
  return (loaded ??= (async () => {
    const p = await import("pkijs");
    p.setEngine(
      "node-join",
      new p.CryptoEngine({ name: "node-join", crypto: webcrypto as Crypto }),
    );
    pssParams = p.RSASSAPSSParams;
    return p;
  })());
}

export interface PathInput {
  /** Leaf first, anchor last: the path verifyIssued() found by issuer names and signatures. */
  path: CertInfo[];
  /** Every certificate the CA sent after the leaf (path building may use any of them). */
  intermediates: CertInfo[];
  /** What the leaf is for; every CA on the path must allow it. */
  usages: Eku[];
  /** A date inside every certificate's validity (the caller has checked validity with skew). */
  checkDate: Date;
}

export type PathVerdict = { path: CertInfo[] } | { reason: string };

const OID = {
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  nameConstraints: "2.5.29.30",
  certificatePolicies: "2.5.29.32",
  subjectKeyId: "2.5.29.14",
  authorityKeyId: "2.5.29.35",
} as const;

/**
 * Critical extensions a certificate may carry: those both Go's crypto/x509 and OpenSSL process.
 * Any other critical extension fails the path (RFC 5280 4.2: "MUST reject").
 */
const HANDLED_CRITICAL = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.nameConstraints,
  OID.certificatePolicies,
]);

/**
 * Signature algorithms accepted on every certificate below the anchor: SHA-2 with ECDSA, RSA
 * PKCS #1 v1.5 or RSA-PSS, and Ed25519 (what Go verifies, at OpenSSL's security level 2). SHA-1
 * and MD5 are refused, as Go (since 1.18) and OpenSSL at level 2 refuse them.
 */
const SIGNATURE_ALGORITHMS: Record<string, string> = {
  "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
  "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
  "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
  "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
  "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
  "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
  "1.2.840.113549.1.1.10": "RSASSA-PSS",
  "1.3.101.112": "Ed25519",
};
const WEAK_ALGORITHMS: Record<string, string> = {
  "1.2.840.10045.4.1": "ecdsa-with-SHA1",
  "1.2.840.10045.4.3.1": "ecdsa-with-SHA224",
  "1.2.840.113549.1.1.2": "md2WithRSAEncryption",
  "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
  "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
  "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
  "1.2.840.10040.4.3": "dsa-with-SHA1",
};
const PSS_HASHES = new Set([
  "2.16.840.1.101.3.4.2.1",
  "2.16.840.1.101.3.4.2.2",
  "2.16.840.1.101.3.4.2.3",
]);
/** Curves Go's crypto/x509 verifies with (P-224 is below OpenSSL's level 2). */
const CURVES = new Set(["prime256v1", "secp384r1", "secp521r1"]);
const MIN_RSA_BITS = 2048;

const KU_BITS = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyAgreement: 4,
  keyCertSign: 5,
} as const;

/** Which leaf key usages let it do its TLS part (OpenSSL's check_purpose_ssl_server/_client). */
const LEAF_KU: Record<Eku, { names: (keyof typeof KU_BITS)[]; what: string }> = {
  serverAuth: {
    names: ["digitalSignature", "keyEncipherment", "keyAgreement"],
    what: "TLS server authentication",
  },
  clientAuth: { names: ["digitalSignature", "keyAgreement"], what: "TLS client authentication" },
};

interface Parsed {
  info: CertInfo;
  cert: Pkijs.Certificate;
  label: string;
}

/**
 * pkijs's reading of each certificate, kept while the CertInfo lives: a CA's anchors are parsed
 * once per run, not once per certificate issued (a control plane has 13).
 */
const pkijsOf = new WeakMap<CertInfo, Pkijs.Certificate>();

export async function validatePath(input: PathInput): Promise<PathVerdict> {
  const p = await pkijs();
  const byCert = new Map<Pkijs.Certificate, CertInfo>();
  const parsed = new Map<CertInfo, Pkijs.Certificate>();
  const parse = (c: CertInfo): Pkijs.Certificate => {
    let cert = parsed.get(c);
    if (!cert) {
      cert = pkijsOf.get(c) ?? p.Certificate.fromBER(new Uint8Array(c.der));
      pkijsOf.set(c, cert);
      parsed.set(c, cert);
      byCert.set(cert, c);
    }
    return cert;
  };
  const [leaf] = input.path as [CertInfo, ...CertInfo[]];
  const anchor = input.path[input.path.length - 1]!;
  let offered: Pkijs.Certificate[];
  let leafCert: Pkijs.Certificate;
  let anchorCert: Pkijs.Certificate;
  try {
    leafCert = parse(leaf);
    anchorCert = parse(anchor);
    offered = unique(input.intermediates)
      .filter((c) => !c.der.equals(leaf.der) && !c.der.equals(anchor.der))
      .map(parse);
    for (const c of input.path) parse(c);
  } catch (err) {
    return { reason: `a certificate of the answer does not parse (${(err as Error).message})` };
  }

  const own = checkPath(input.path, parsed, input.usages);
  if (own) return { reason: own };

  // The signatures along the path verifyIssued found are verified already: not again.
  const proven = new Map<Pkijs.Certificate, Pkijs.Certificate>();
  input.path.forEach((c, i) => {
    if (i + 1 < input.path.length) proven.set(parsed.get(c)!, parsed.get(input.path[i + 1]!)!);
  });
  // The anchor's name constraints seed the validator's (pkijs applies only those of the
  // certificates below the anchor).
  const anchorNc = extension(anchorCert, OID.nameConstraints)?.parsedValue as
    Pkijs.NameConstraints | undefined;
  const engine = new p.CertificateChainValidationEngine({
    trustedCerts: [anchorCert],
    certs: [...offered, leafCert],
    checkDate: input.checkDate,
    findIssuer: (cert, eng) => Promise.resolve(issuersOf(cert, eng, byCert, proven)),
  });
  let result: Pkijs.CertificateChainValidationEngineVerifyResult;
  try {
    result = await engine.verify({
      initialPermittedSubtreesSet: anchorNc?.permittedSubtrees ?? [],
      initialExcludedSubtreesSet: anchorNc?.excludedSubtrees ?? [],
    });
  } catch (err) {
    result = { result: false, resultCode: -1, resultMessage: (err as Error).message };
  }
  if (!result.result || !result.certificatePath)
    return {
      reason: `fails RFC 5280 path validation to the pinned CA (${result.resultMessage || `code ${result.resultCode}`})`,
    };
  const validated = result.certificatePath.map((c) => byCert.get(c)!);
  // Another path than the one checked above (a second intermediate offered): check that one too.
  if (!samePath(validated, input.path)) {
    const again = checkPath(validated, parsed, input.usages);
    if (again) return { reason: again };
  }
  return { path: validated };
}

function unique(certs: CertInfo[]): CertInfo[] {
  return certs.filter((c, i) => certs.findIndex((d) => d.der.equals(c.der)) === i);
}

function samePath(a: CertInfo[], b: CertInfo[]): boolean {
  return a.length === b.length && a.every((c, i) => c.der.equals(b[i]!.der));
}

/**
 * pkijs's findIssuer with node:crypto signatures: candidates by issuer name, kept when the
 * signature verifies with their key.
 */
function issuersOf(
  cert: Pkijs.Certificate,
  engine: Pkijs.CertificateChainValidationEngine,
  byCert: Map<Pkijs.Certificate, CertInfo>,
  proven: Map<Pkijs.Certificate, Pkijs.Certificate>,
): Pkijs.Certificate[] {
  const node = (c: Pkijs.Certificate): X509Certificate | undefined => byCert.get(c)?.node;
  const signedBy = (parent: Pkijs.Certificate): boolean => {
    if (proven.get(cert) === parent) return true;
    const child = node(cert);
    const issuer = node(parent);
    if (!child || !issuer) return false;
    try {
      return child.verify(issuer.publicKey);
    } catch {
      return false;
    }
  };
  if (cert.subject.isEqual(cert.issuer) && signedBy(cert)) return [cert];
  return [...engine.trustedCerts, ...engine.certs].filter(
    (c) => c !== cert && cert.issuer.isEqual(c.subject) && signedBy(c),
  );
}

function extension(cert: Pkijs.Certificate, oid: string): Pkijs.Extension | undefined {
  return cert.extensions?.find((e) => e.extnID === oid);
}

/** The keyUsage bits (RFC 5280 4.2.1.3), undefined without the extension, null when malformed. */
function keyUsage(cert: Pkijs.Certificate): Set<number> | undefined | null {
  const ext = extension(cert, OID.keyUsage);
  if (!ext) return undefined;
  const v = ext.parsedValue as
    | {
        idBlock?: { tagClass: number; tagNumber: number };
        valueBlock?: { valueHexView?: Uint8Array };
      }
    | undefined;
  const bytes = v?.valueBlock?.valueHexView;
  if (!v?.idBlock || v.idBlock.tagClass !== 1 || v.idBlock.tagNumber !== 3 || !bytes) return null;
  const bits = new Set<number>();
  bytes.forEach((byte, i) => {
    for (let b = 0; b < 8; b++) if (byte & (0x80 >> b)) bits.add(i * 8 + b);
  });
  return bits;
}

function selfIssued(cert: Pkijs.Certificate): boolean {
  return cert.subject.isEqual(cert.issuer);
}

function ekuName(oid: string): string {
  const name = (Object.keys(EKU_OIDS) as Eku[]).find((k) => EKU_OIDS[k] === oid);
  return name ?? (oid === "2.5.29.37.0" ? "anyExtendedKeyUsage" : oid);
}

/** The first reason `path` (leaf first, anchor last) must be refused, or undefined. */
function checkPath(
  path: CertInfo[],
  parsed: Map<CertInfo, Pkijs.Certificate>,
  usages: Eku[],
): string | undefined {
  const certs: Parsed[] = path.map((info, i) => ({
    info,
    cert: parsed.get(info)!,
    label: i === 0 ? "it" : `chain certificate "${info.commonName}"`,
  }));
  for (const [i, c] of certs.entries()) {
    const why =
      wellFormed(c) ??
      (i === 0 ? leafRules(c, usages) : caRules(c, certs.slice(0, i), usages)) ??
      (i < certs.length - 1 ? signatureRules(c) : undefined) ??
      keyRules(c);
    if (why) return why;
  }
  return nameConstraintRules(certs);
}

/** What OpenSSL's -x509_strict asks of every certificate (RFC 5280 4.1 and 4.2). */
function wellFormed({ cert, label }: Parsed): string | undefined {
  const exts = cert.extensions ?? [];
  if (exts.length && cert.version !== 2)
    return `${label} is an X.509 version ${cert.version + 1} certificate with extensions (RFC 5280 4.1.2.1: version 3 only)`;
  for (const e of exts) {
    if (exts.filter((x) => x.extnID === e.extnID).length > 1)
      return `${label} has the extension ${e.extnID} twice (RFC 5280 4.2)`;
    const v = e.parsedValue as { parsingError?: string } | undefined;
    if (v?.parsingError || (v === undefined && (e.critical || isKnown(e.extnID))))
      return `${label} has a malformed extension ${e.extnID}`;
    if (e.critical && !HANDLED_CRITICAL.has(e.extnID))
      return `${label} has an unrecognised critical extension ${e.extnID}`;
  }
  if (cert.issuer.typesAndValues.length === 0)
    return `${label} has an empty issuer name (RFC 5280 4.1.2.4)`;
  const san = extension(cert, OID.subjectAltName)?.parsedValue as Pkijs.AltName | undefined;
  if (san && san.altNames.length === 0)
    return `${label} has an empty subjectAltName extension (RFC 5280 4.2.1.6)`;
  if (!cert.signature.isEqual(cert.signatureAlgorithm))
    return `${label} names signature algorithm ${cert.signature.algorithmId} in its body but ${cert.signatureAlgorithm.algorithmId} outside (RFC 5280 4.1.1.2)`;
  return undefined;
}

function isKnown(oid: string): boolean {
  return (Object.values(OID) as string[]).includes(oid);
}

function basicConstraints(cert: Pkijs.Certificate): Pkijs.BasicConstraints | undefined {
  return extension(cert, OID.basicConstraints)?.parsedValue as Pkijs.BasicConstraints | undefined;
}

function pathLen(bc: Pkijs.BasicConstraints | undefined): number | undefined {
  const v = bc?.pathLenConstraint;
  if (v === undefined) return undefined;
  return typeof v === "number" ? v : Number(v.valueBlock.valueDec);
}

/** What a node's leaf certificate may be. */
function leafRules({ cert, label }: Parsed, usages: Eku[]): string | undefined {
  const bc = basicConstraints(cert);
  // A certificate that says it is a CA is not a node's credential, whatever its keyUsage says
  // (RFC 5280 4.2.1.9; kubeadm's leaf certificates are CA:FALSE).
  if (bc?.cA) return "is a CA certificate, not a leaf certificate";
  if (pathLen(bc) !== undefined)
    return `${label} has a pathLenConstraint but is not a CA (RFC 5280 4.2.1.9)`;
  const ku = keyUsage(cert);
  if (ku === null) return `${label} has a malformed key usage extension`;
  if (ku?.has(KU_BITS.keyCertSign))
    return `${label} has keyCertSign in its key usage, which only a CA may have (RFC 5280 4.2.1.3)`;
  if (ku)
    for (const u of usages) {
      const need = LEAF_KU[u];
      if (!need.names.some((n) => ku.has(KU_BITS[n])))
        return `${label} has a key usage that does not allow ${need.what} (it needs one of ${need.names.join(", ")})`;
    }
  return undefined;
}

/** What an issuer on the path must be: a CA, allowed to sign, with room below it. */
function caRules(c: Parsed, below: Parsed[], usages: Eku[]): string | undefined {
  const { cert, label } = c;
  const bcExt = extension(cert, OID.basicConstraints);
  const bc = basicConstraints(cert);
  if (!bc?.cA) return `${label} is not a CA certificate (no basicConstraints CA:TRUE)`;
  if (!bcExt?.critical)
    return `${label} does not mark basicConstraints critical (RFC 5280 4.2.1.9)`;
  const ku = keyUsage(cert);
  if (ku === null) return `${label} has a malformed key usage extension`;
  if (ku && !ku.has(KU_BITS.keyCertSign))
    return `${label} may not sign certificates: its key usage lacks keyCertSign (RFC 5280 4.2.1.3)`;
  const limit = pathLen(bc);
  // RFC 5280 6.1.4 (l), (m): the intermediate CAs below this one, self-issued ones not counted.
  const cas = below.slice(1).filter((b) => !selfIssued(b.cert)).length;
  if (limit !== undefined && cas > limit)
    return `${label} allows ${limit} intermediate CA certificate${limit === 1 ? "" : "s"} below it (pathLenConstraint), but the path has ${cas}`;
  // Extended key usage nests: a CA limited to some purposes cannot vouch for others (Go:
  // checkChainForKeyUsage; OpenSSL: check_purpose on every CA of the chain).
  const eku = extension(cert, OID.extKeyUsage)?.parsedValue as Pkijs.ExtKeyUsage | undefined;
  if (eku) {
    const lacking = usages.filter((u) => !eku.keyPurposes.includes(EKU_OIDS[u]));
    if (lacking.length)
      return `${label} limits extended key usage to ${eku.keyPurposes.map(ekuName).join(", ")}, which excludes ${lacking.join(", ")}`;
  }
  return undefined;
}

function signatureRules({ cert, label }: Parsed): string | undefined {
  const oid = cert.signatureAlgorithm.algorithmId;
  const name = SIGNATURE_ALGORITHMS[oid];
  if (!name)
    return `${label} is signed with ${WEAK_ALGORITHMS[oid] ?? oid}, which is weak or unsupported (SHA-256 or stronger with ECDSA, RSA or RSA-PSS, or Ed25519)`;
  if (name === "RSASSA-PSS") {
    const hash = pssHash(cert.signatureAlgorithm.algorithmParams);
    if (!hash || !PSS_HASHES.has(hash))
      return `${label} is signed with RSASSA-PSS over ${hash ?? "an unreadable hash"}, which is weak or unsupported`;
  }
  return undefined;
}

let pssParams: typeof Pkijs.RSASSAPSSParams | undefined;

/** The hash of RSASSA-PSS parameters (SHA-1 when absent, RFC 4055 3.1). */
function pssHash(params: unknown): string | undefined {
  try {
    return new pssParams!({ schema: params as never }).hashAlgorithm.algorithmId;
  } catch {
    return undefined;
  }
}

function keyRules({ info, label }: Parsed): string | undefined {
  const key = info.node.publicKey;
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "rsa":
    case "rsa-pss":
      if ((d.modulusLength ?? 0) < MIN_RSA_BITS)
        return `${label} has a ${d.modulusLength ?? "?"}-bit RSA key; at least ${MIN_RSA_BITS} bits are required`;
      return undefined;
    case "ec":
      if (!d.namedCurve || !CURVES.has(d.namedCurve))
        return `${label} has an EC key on ${d.namedCurve ?? "explicit parameters"}; P-256, P-384 or P-521 is required`;
      return undefined;
    case "ed25519":
      return undefined;
    default:
      return `${label} has a ${key.asymmetricKeyType ?? "unknown"} key, which is not accepted`;
  }
}

// ---- name constraints (RFC 5280 4.2.1.10, 6.1.3 (b), (c), 6.1.4 (g)) ---------------------------

interface Names {
  dns: string[];
  ips: Uint8Array[];
}

/** OpenSSL's test for a CN that names a host (v3_ncons.c cn2dnsid): labels and a dot at least. */
const HOSTNAME_CN =
  /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\.?$/;

function namesOf(c: Parsed, isLeaf: boolean): Names {
  const san = extension(c.cert, OID.subjectAltName)?.parsedValue as Pkijs.AltName | undefined;
  const dns: string[] = [];
  const ips: Uint8Array[] = [];
  for (const g of san?.altNames ?? []) {
    if (g.type === 2 && typeof g.value === "string") dns.push(g.value);
    if (g.type === 7) ips.push(bytesOf(g.value));
  }
  // A leaf without DNS names: OpenSSL checks a host-like CN against DNS constraints.
  if (isLeaf && dns.length === 0)
    for (const cn of c.info.commonNames) if (HOSTNAME_CN.test(cn)) dns.push(cn);
  return { dns, ips };
}

function bytesOf(v: unknown): Uint8Array {
  return (
    (v as { valueBlock?: { valueHexView?: Uint8Array } })?.valueBlock?.valueHexView ??
    new Uint8Array()
  );
}

/**
 * RFC 5280 4.2.1.10, as OpenSSL's nc_dns: "a.b" covers itself and its subdomains, ".a.b" only
 * these.
 */
function dnsWithin(name: string, constraint: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  const c = constraint.toLowerCase();
  if (c === "") return true;
  if (c.startsWith(".")) return n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
}

function ipWithin(ip: Uint8Array, constraint: Uint8Array): boolean {
  if (constraint.length !== ip.length * 2) return false;
  for (let i = 0; i < ip.length; i++)
    if ((ip[i]! & constraint[ip.length + i]!) !== (constraint[i]! & constraint[ip.length + i]!))
      return false;
  return true;
}

function ipText(ip: Uint8Array): string {
  if (ip.length === 4) return [...ip].join(".");
  const groups: string[] = [];
  for (let i = 0; i < ip.length; i += 2) groups.push(((ip[i]! << 8) | ip[i + 1]!).toString(16));
  return normalizeIp(groups.join(":"));
}

/**
 * Every CA's constraints apply to every certificate below it (the anchor's included, as Go and
 * OpenSSL apply them): a name must lie in the permitted subtrees of each CA that permits names of
 * its type, and in no excluded subtree.
 */
function nameConstraintRules(certs: Parsed[]): string | undefined {
  for (let k = certs.length - 1; k >= 1; k--) {
    const ca = certs[k]!;
    const nc = extension(ca.cert, OID.nameConstraints)?.parsedValue as
      Pkijs.NameConstraints | undefined;
    if (!nc) continue;
    const permitted = nc.permittedSubtrees ?? [];
    const excluded = nc.excludedSubtrees ?? [];
    const of = (list: Pkijs.GeneralSubtree[], type: number) =>
      list.filter((s) => s.base.type === type).map((s) => s.base.value as unknown);
    const pDns = of(permitted, 2).filter((v): v is string => typeof v === "string");
    const eDns = of(excluded, 2).filter((v): v is string => typeof v === "string");
    const pIp = of(permitted, 7).map(bytesOf);
    const eIp = of(excluded, 7).map(bytesOf);
    for (let j = k - 1; j >= 0; j--) {
      const sub = certs[j]!;
      // RFC 5280 6.1.3 (b): a self-issued intermediate is not checked.
      if (j > 0 && selfIssued(sub.cert)) continue;
      const names = namesOf(sub, j === 0);
      const whose = j === 0 ? "its" : `the ${sub.label}'s`;
      for (const d of names.dns) {
        if (eDns.some((c) => dnsWithin(d, c)))
          return `${whose} DNS name "${d}" is excluded by the name constraints of ${ca.label}`;
        if (pDns.length && !pDns.some((c) => dnsWithin(d, c)))
          return `${whose} DNS name "${d}" is outside the names permitted by ${ca.label}`;
      }
      for (const ip of names.ips) {
        if (eIp.some((c) => ipWithin(ip, c)))
          return `${whose} IP address ${ipText(ip)} is excluded by the name constraints of ${ca.label}`;
        if (pIp.length && !pIp.some((c) => ipWithin(ip, c)))
          return `${whose} IP address ${ipText(ip)} is outside the addresses permitted by ${ca.label}`;
      }
    }
  }
  return undefined;
}
