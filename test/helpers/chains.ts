// Certificate chains with every knob path validation looks at (basicConstraints and pathLen,
// keyUsage, EKU, name constraints, validity, signature and key algorithms, several CNs), built
// in process with @peculiar/x509 for the path-validation tests, which give every chain to
// node-join and to `openssl verify` and compare the verdicts.
import { createPrivateKey, createSign, KeyObject, webcrypto } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peculiar, type X509 } from "../../agent/pki/peculiar.js";

const x509 = await peculiar();

export type KeyKind = "p256" | "p384" | "rsa1024" | "rsa2048";
export type Hash = "SHA-1" | "SHA-256" | "SHA-384";

export interface Minted {
  pem: string;
  der: Buffer;
  keys: CryptoKeyPair;
  keyKind: KeyKind;
  cert: X509.X509Certificate;
}

export interface NameSubtrees {
  dns?: string[];
  /** CIDR, "10.0.0.0/8" or "2001:db8::/32". */
  ips?: string[];
}

export interface CertSpec {
  /** Each entry one CN attribute in its own RDN, in order (several: the duplicate-CN case). */
  cn: string | string[];
  o?: string[];
  /** Undefined: self-signed. */
  issuer?: Minted;
  /** basicConstraints cA; undefined: no basicConstraints extension at all. */
  ca?: boolean;
  pathLen?: number;
  /** basicConstraints critical (default true for CAs, as RFC 5280 4.2.1.9 requires). */
  caCritical?: boolean;
  /** KeyUsageFlags bits; null: no keyUsage extension. Default: CAs keyCertSign|cRLSign, else
   * digitalSignature|keyEncipherment. */
  keyUsage?: number | null;
  ekus?: string[];
  dns?: string[];
  ips?: string[];
  uris?: string[];
  emails?: string[];
  permitted?: NameSubtrees;
  excluded?: NameSubtrees;
  notBefore?: Date;
  notAfter?: Date;
  key?: KeyKind;
  /** Reuse a key (a leaf for a CSR's key). */
  keys?: CryptoKeyPair;
  /** The hash the issuer signs with. */
  hash?: Hash;
  /** Signed with `hash`, but the TBS names another algorithm (RFC 5280 4.1.1.2 forbids it). */
  innerAlgorithmMismatch?: boolean;
  /** An extra extension, critical, that nobody understands. */
  unknownCritical?: boolean;
  /** No subject/authority key identifiers (OpenSSL's -x509_strict requires them). */
  noKeyIds?: boolean;
  /** Non-critical extensions of these OIDs, each holding a DER NULL, after the others. */
  extraOids?: string[];
}

export const KU = {
  digitalSignature: 1,
  keyEncipherment: 4,
  keyCertSign: 32,
  cRLSign: 64,
} as const;

export const EKU = {
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
  any: "2.5.29.37.0",
} as const;

const DAY = 86400_000;

export async function newKeys(kind: KeyKind = "p256"): Promise<CryptoKeyPair> {
  if (kind === "p256" || kind === "p384")
    return (await webcrypto.subtle.generateKey(
      { name: "ECDSA", namedCurve: kind === "p256" ? "P-256" : "P-384" },
      true,
      ["sign", "verify"],
    )) as CryptoKeyPair;
  return (await webcrypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: kind === "rsa1024" ? 1024 : 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  )) as CryptoKeyPair;
}

// ---- a little DER, for the extensions @peculiar/x509 has no class for ----

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

/** Reads the TLV at `at`: tag, start of content, end. */
export function readTlv(der: Buffer, at: number): { tag: number; start: number; end: number } {
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | der[at + 2 + i]!;
    start += n;
  }
  return { tag, start, end: start + len };
}

function ipBytes(ip: string): Buffer {
  if (ip.includes(":")) {
    const [head, tail] = ip.includes("::") ? ip.split("::") : [ip, undefined];
    const h = head ? head.split(":") : [];
    const t = tail ? tail.split(":") : [];
    const groups =
      tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
    return Buffer.concat(
      groups.map((g) =>
        Buffer.from(
          parseInt(g || "0", 16)
            .toString(16)
            .padStart(4, "0"),
          "hex",
        ),
      ),
    );
  }
  return Buffer.from(ip.split(".").map(Number));
}

function cidrBytes(cidr: string): Buffer {
  const [ip, bits] = cidr.split("/") as [string, string];
  const addr = ipBytes(ip);
  const mask = Buffer.alloc(addr.length);
  for (let i = 0; i < Number(bits); i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  return Buffer.concat([addr, mask]);
}

function subtrees(s: NameSubtrees): Buffer {
  const entries = [
    ...(s.dns ?? []).map((d) => tlv(0x82, Buffer.from(d, "ascii"))),
    ...(s.ips ?? []).map((c) => tlv(0x87, cidrBytes(c))),
  ].map((base) => tlv(0x30, base));
  return Buffer.concat(entries);
}

function nameConstraints(permitted?: NameSubtrees, excluded?: NameSubtrees): Buffer {
  const parts: Buffer[] = [];
  if (permitted) parts.push(tlv(0xa0, subtrees(permitted)));
  if (excluded) parts.push(tlv(0xa1, subtrees(excluded)));
  return tlv(0x30, Buffer.concat(parts));
}

function subjectName(spec: CertSpec): X509.JsonName {
  const cns = Array.isArray(spec.cn) ? spec.cn : [spec.cn];
  return [...(spec.o ?? []).map((v) => ({ O: [v] })), ...cns.map((v) => ({ CN: [v] }))];
}

function signingAlgorithm(kind: KeyKind, hash: Hash): Algorithm {
  return (
    kind === "p256" || kind === "p384"
      ? { name: "ECDSA", hash }
      : { name: "RSASSA-PKCS1-v1_5", hash }
  ) as Algorithm;
}

let serial = 1;

export async function mint(spec: CertSpec): Promise<Minted> {
  const keyKind = spec.key ?? "p256";
  const keys = spec.keys ?? (await newKeys(keyKind));
  const issuerKind = spec.issuer?.keyKind ?? keyKind;
  const isCa = spec.ca === true;
  const now = Date.now();
  const extensions: X509.Extension[] = [];
  if (spec.ca !== undefined)
    extensions.push(
      new x509.BasicConstraintsExtension(spec.ca, spec.pathLen, spec.caCritical ?? isCa),
    );
  const ku =
    spec.keyUsage === undefined
      ? isCa
        ? KU.keyCertSign | KU.cRLSign
        : KU.digitalSignature | KU.keyEncipherment
      : spec.keyUsage;
  if (ku !== null) extensions.push(new x509.KeyUsagesExtension(ku, true));
  if (spec.ekus) extensions.push(new x509.ExtendedKeyUsageExtension(spec.ekus));
  const alt = [
    ...(spec.dns ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(spec.ips ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(spec.uris ?? []).map((value) => ({ type: "url" as const, value })),
    ...(spec.emails ?? []).map((value) => ({ type: "email" as const, value })),
  ];
  if (alt.length) extensions.push(new x509.SubjectAlternativeNameExtension(alt));
  if (spec.permitted || spec.excluded)
    extensions.push(
      new x509.Extension(
        "2.5.29.30",
        true,
        new Uint8Array(nameConstraints(spec.permitted, spec.excluded)),
      ),
    );
  if (spec.unknownCritical)
    extensions.push(new x509.Extension("1.3.6.1.4.1.55555.1", true, new Uint8Array([0x05, 0x00])));
  for (const oid of spec.extraOids ?? [])
    extensions.push(new x509.Extension(oid, false, new Uint8Array([0x05, 0x00])));
  if (!spec.noKeyIds) {
    extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
    if (spec.issuer)
      extensions.push(
        await x509.AuthorityKeyIdentifierExtension.create(spec.issuer.keys.publicKey),
      );
  }
  const hash = spec.hash ?? "SHA-256";
  const signer = spec.issuer?.keys.privateKey ?? keys.privateKey;
  const signingKey = await withHash(signer, issuerKind, hash);
  const common = {
    serialNumber: (serial++).toString(16).padStart(8, "0"),
    notBefore: spec.notBefore ?? new Date(now - 3600_000),
    notAfter: spec.notAfter ?? new Date(now + 365 * DAY),
    signingAlgorithm: signingAlgorithm(issuerKind, hash),
    extensions,
  };
  const cert = spec.issuer
    ? await x509.X509CertificateGenerator.create({
        ...common,
        subject: new x509.Name(subjectName(spec)),
        issuer: spec.issuer.cert.subject,
        publicKey: keys.publicKey,
        signingKey,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({
        ...common,
        name: new x509.Name(subjectName(spec)),
        keys: { publicKey: keys.publicKey, privateKey: signingKey },
      });
  let der: Buffer = Buffer.from(cert.rawData);
  if (spec.innerAlgorithmMismatch) {
    const signer = spec.issuer?.keys.privateKey ?? keys.privateKey;
    der = await mismatchInnerAlgorithm(der, signer, hash);
  }
  const pem = `-----BEGIN CERTIFICATE-----\n${(der.toString("base64").match(/.{1,64}/g) ?? []).join("\n")}\n-----END CERTIFICATE-----\n`;
  return { pem, der, keys, keyKind, cert: new x509.X509Certificate(new Uint8Array(der)) };
}

/** The private key of `m`, PKCS#8 PEM (a machine key file, a key to give node-join). */
export async function privateKeyPem(m: Pick<Minted, "keys">): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", m.keys.privateKey));
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
}

/** WebCrypto binds an RSA key to one hash: the issuer's key again, bound to `hash`. */
async function withHash(key: CryptoKey, kind: KeyKind, hash: Hash): Promise<CryptoKey> {
  if (kind === "p256" || kind === "p384" || hash === "SHA-256") return key;
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", key);
  return webcrypto.subtle.importKey("pkcs8", pkcs8, { name: "RSASSA-PKCS1-v1_5", hash }, true, [
    "sign",
  ]);
}

const ALG_OIDS: Record<string, Buffer> = {
  // ecdsa-with-SHA256 and ecdsa-with-SHA384: same length, so the TBS keeps its shape.
  ecdsaSha256: Buffer.from("06082a8648ce3d040302", "hex"),
  ecdsaSha384: Buffer.from("06082a8648ce3d040303", "hex"),
};

/**
 * Re-signs the TBS after naming ecdsa-with-SHA384 in it, keeping ecdsa-with-SHA256 outside: the
 * signature verifies under the outer algorithm, the two identifiers differ.
 */
async function mismatchInnerAlgorithm(der: Buffer, signer: CryptoKey, hash: Hash): Promise<Buffer> {
  const outer = readTlv(der, 0);
  const tbs = readTlv(der, outer.start);
  const tbsDer = Buffer.from(der.subarray(outer.start, tbs.end));
  const at = tbsDer.indexOf(ALG_OIDS.ecdsaSha256!);
  if (at < 0 || hash !== "SHA-256") throw new Error("innerAlgorithmMismatch needs ECDSA SHA-256");
  ALG_OIDS.ecdsaSha384!.copy(tbsDer, at);
  const rest = der.subarray(tbs.end, outer.end);
  const algTlv = readTlv(rest, 0);
  const alg = rest.subarray(0, algTlv.end);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", signer));
  const key: KeyObject = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  const sig = createSign("SHA256").update(tbsDer).sign(key);
  const bitString = tlv(0x03, Buffer.concat([Buffer.from([0]), sig]));
  return tlv(0x30, Buffer.concat([tbsDer, alg, bitString]));
}

export interface Chain {
  leaf: Minted;
  intermediates: Minted[];
  anchor: Minted;
}

/** `openssl verify`'s verdict: undefined when it verifies, else its error line. */
export function opensslVerdict(
  chain: Chain,
  purpose: "sslserver" | "sslclient",
  at?: Date,
): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), "nj-path-"));
  try {
    writeFileSync(join(dir, "anchor.pem"), chain.anchor.pem);
    writeFileSync(join(dir, "leaf.pem"), chain.leaf.pem);
    const args = [
      "verify",
      "-x509_strict",
      // Security level 2 (RSA and DSA keys of 2048 bits or more, ECC of 224, no SHA-1): what
      // node-join enforces, and what Go (crypto/x509 refuses SHA-1 signatures) comes close to.
      "-auth_level",
      "2",
      "-purpose",
      purpose,
      "-CAfile",
      join(dir, "anchor.pem"),
    ];
    if (at) args.push("-attime", String(Math.floor(at.getTime() / 1000)));
    if (chain.intermediates.length) {
      writeFileSync(join(dir, "chain.pem"), chain.intermediates.map((c) => c.pem).join(""));
      args.push("-untrusted", join(dir, "chain.pem"));
    }
    try {
      execFileSync("openssl", [...args, join(dir, "leaf.pem")], { stdio: "pipe" });
      return undefined;
    } catch (err) {
      const e = err as { stdout?: Buffer; stderr?: Buffer };
      const text = `${e.stdout?.toString() ?? ""}${e.stderr?.toString() ?? ""}`;
      return /error \d+ at \d+ depth lookup: .*/.exec(text)?.[0] ?? text.trim().split("\n")[0];
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
