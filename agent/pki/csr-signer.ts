// A PKCS#10 request (RFC 2986) signed by a key node-join cannot hold: the machine key in the TPM
// signs the DER of the CertificationRequestInfo (tpm/tpm.ts sign(..., "der")). ECDSA P-256 with
// SHA-256 only (RFC 5758 3.2: ecdsa-with-SHA256, no parameters), the subject a CN and the DNS SANs
// `step ca token <name>` puts in a token (a JWK provisioner compares the CSR's SANs with them).

/** A DER TLV (X.690 8.1.2, 8.1.3: definite lengths). */
function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  const len =
    n < 0x80
      ? Buffer.from([n])
      : n < 0x100
        ? Buffer.from([0x81, n])
        : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

/** An OBJECT IDENTIFIER in dotted form (X.690 8.19). */
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split(".").map(Number);
  const bytes = [a! * 40 + b!];
  for (const n of rest) {
    const groups = [n & 0x7f];
    for (let v = n >> 7; v > 0; v >>= 7) groups.unshift((v & 0x7f) | 0x80);
    bytes.push(...groups);
  }
  return tlv(0x06, Buffer.from(bytes));
}

const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);

const CN = "2.5.4.3";
const EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const SUBJECT_ALT_NAME = "2.5.29.17";
const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";

export interface SignerCsr {
  commonName: string;
  dnsNames: string[];
  /** The key's SubjectPublicKeyInfo, DER. */
  spki: Buffer;
  /** ECDSA P-256 over SHA-256 of the data, as a DER ECDSA-Sig-Value (RFC 3279 2.2.3). */
  sign(data: Buffer): Promise<Buffer>;
}

/** The request as PEM, signed by `r.sign`. */
export async function buildSignerCsr(r: SignerCsr): Promise<string> {
  const subject = seq(set(seq(oid(CN), tlv(0x0c, Buffer.from(r.commonName, "utf8")))));
  const sans = seq(...r.dnsNames.map((d) => tlv(0x82, Buffer.from(d, "ascii"))));
  const extensions = seq(seq(oid(SUBJECT_ALT_NAME), tlv(0x04, sans)));
  const attributes = tlv(
    0xa0,
    ...(r.dnsNames.length ? [seq(oid(EXTENSION_REQUEST), set(extensions))] : []),
  );
  const info = seq(tlv(0x02, Buffer.from([0])), subject, r.spki, attributes);
  const signature = await r.sign(info);
  const der = seq(info, seq(oid(ECDSA_WITH_SHA256)), tlv(0x03, Buffer.from([0]), signature));
  const b64 = der.toString("base64").replace(/.{64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64.replace(/\n$/, "")}\n-----END CERTIFICATE REQUEST-----\n`;
}
