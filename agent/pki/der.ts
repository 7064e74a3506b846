// The extension OIDs of a certificate, read from its DER. node:crypto's X509Certificate names no
// extension but a few, and the ASN.1 parsers at hand (pkijs's asn1js, @peculiar/x509's) cost about
// 20 ms to load in the single binary (pki/path.ts, pki/peculiar.ts): too much for the CA server's
// TLS check on every `renew`, nothing due included. The certificate read here has already been
// parsed and its chain verified by OpenSSL in the TLS handshake; a DER that is not what RFC 5280
// 4.1 describes is refused all the same (undefined), never guessed at.

interface Tlv {
  tag: number;
  /** Offset of the contents. */
  start: number;
  /** Offset just past the contents. */
  end: number;
}

/** One DER TLV at `at` (X.690 8.1: definite lengths only, as DER requires), within `limit`. */
function tlv(der: Uint8Array, at: number, limit: number): Tlv | undefined {
  if (at + 2 > limit) return undefined;
  const tag = der[at]!;
  if ((tag & 0x1f) === 0x1f) return undefined; // high tag numbers: none in a certificate
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  const end = start + len;
  return end > limit ? undefined : { tag, start, end };
}

/** The children of a constructed TLV. */
function children(der: Uint8Array, parent: Tlv): Tlv[] | undefined {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end;) {
    const t = tlv(der, at, parent.end);
    if (!t) return undefined;
    out.push(t);
    at = t.end;
  }
  return out;
}

/** X.690 8.19: an OBJECT IDENTIFIER's contents in dotted form. */
function oidText(b: Uint8Array): string | undefined {
  const arcs: number[] = [];
  let v = 0;
  for (let i = 0; i < b.length; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) return undefined;
    if (!(b[i]! & 0x80)) {
      arcs.push(v);
      v = 0;
    } else if (i === b.length - 1) return undefined;
  }
  if (arcs.length === 0) return undefined;
  const first = arcs[0]!;
  const head = first < 40 ? [0, first] : first < 80 ? [1, first - 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join(".");
}

const SEQUENCE = 0x30;
const OID = 0x06;
/** TBSCertificate's `extensions [3] EXPLICIT` (RFC 5280 4.1). */
const EXTENSIONS = 0xa3;

/**
 * The OIDs of every extension of a DER certificate, in order (RFC 5280 4.1: Certificate ->
 * TBSCertificate -> [3] Extensions -> Extension -> extnID); undefined when the DER is not a
 * certificate of that shape.
 */
export function extensionOids(der: Uint8Array): string[] | undefined {
  const cert = tlv(der, 0, der.length);
  if (!cert || cert.tag !== SEQUENCE || cert.end !== der.length) return undefined;
  const tbs = children(der, cert)?.[0];
  if (!tbs || tbs.tag !== SEQUENCE) return undefined;
  const fields = children(der, tbs);
  if (!fields) return undefined;
  const ext = fields.find((f) => f.tag === EXTENSIONS);
  if (!ext) return [];
  const [list] = children(der, ext) ?? [];
  if (!list || list.tag !== SEQUENCE) return undefined;
  const entries = children(der, list);
  if (!entries) return undefined;
  const out: string[] = [];
  for (const e of entries) {
    const id = e.tag === SEQUENCE ? children(der, e)?.[0] : undefined;
    const text = id?.tag === OID ? oidText(der.subarray(id.start, id.end)) : undefined;
    if (text === undefined) return undefined;
    out.push(text);
  }
  return out;
}
