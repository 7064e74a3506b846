// Checks an issued certificate against what was asked for, before anything touches the disk.
import type { CertTemplate } from "./certs.js";
import { VerificationError } from "../common/errors.js";
import { buildChain, parseCert, splitPemCertificates, type CertInfo } from "./x509.js";

/**
 * Clock skew tolerated between node and CA for NotBefore (kubeadm backdates by the same 5 minutes).
 */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

export interface VerifyInput {
  /** Certificate kind, for messages. */
  kind: string;
  /** Which CA answered, for messages (the backend's description, "CA kubernetes (cfssl …)"). */
  ca: string;
  /** The PEM the CA returned: leaf first, intermediates allowed after it. */
  chainPem: string;
  /** DER SubjectPublicKeyInfo of the key the CSR was made with. */
  expectedSpki: Buffer;
  /** The pinned CA certificates the leaf must chain to. */
  anchors: CertInfo[];
  template: CertTemplate;
  now: Date;
}

export interface VerifiedCert {
  leaf: CertInfo;
  /** Leaf then intermediates, anchor excluded: what goes into the .crt file. */
  chain: CertInfo[];
}

export function verifyIssued(input: VerifyInput): VerifiedCert {
  const what = `certificate ${input.kind} from ${input.ca}`;
  const fail = (reason: string): never => {
    throw new VerificationError(`${what}: ${reason}`);
  };
  let certs: CertInfo[];
  try {
    certs = splitPemCertificates(input.chainPem, "the answer").map(parseCert);
  } catch (err) {
    return fail(`not a valid certificate (${(err as Error).message})`);
  }
  const [leaf, ...rest] = certs as [CertInfo, ...CertInfo[]];
  if (leaf.isCa) fail("is a CA certificate, not a leaf certificate");
  if (!leaf.spki.equals(input.expectedSpki))
    fail("is for a different public key than the one this node generated");
  const path = buildChain(leaf, rest, input.anchors);
  if (!path) fail(`does not chain to the pinned CA (issuer CN "${leaf.issuerCommonName}")`);
  const t = input.template;
  if (leaf.commonName !== t.commonName)
    fail(`CN is "${leaf.commonName}", expected "${t.commonName}"`);
  const missingO = t.organizations.filter((o) => !leaf.organizations.includes(o));
  if (missingO.length)
    fail(
      `subject O lacks ${missingO.map((o) => `"${o}"`).join(", ")} (has ${JSON.stringify(leaf.organizations)})`,
    );
  const missingDns = t.sans.dnsNames.filter((d) => !leaf.dnsNames.includes(d.toLowerCase()));
  const missingIps = t.sans.ips.filter((ip) => !leaf.ips.includes(ip));
  if (missingDns.length || missingIps.length)
    fail(`SANs lack requested ${[...missingDns, ...missingIps].join(", ")}`);
  const missingEku = t.usages.filter((u) => !leaf.ekus.includes(u));
  if (missingEku.length) fail(`extended key usage lacks ${missingEku.join(", ")}`);
  const now = input.now.getTime();
  for (const c of path!) {
    const label = c === leaf ? "it" : `chain certificate "${c.commonName}"`;
    if (c.notBefore.getTime() - CLOCK_SKEW_MS > now)
      fail(`${label} is not valid before ${c.notBefore.toISOString()}`);
    if (c.notAfter.getTime() <= now) fail(`${label} expired at ${c.notAfter.toISOString()}`);
  }
  const anchorDers = input.anchors.map((a) => a.der);
  return { leaf, chain: path!.filter((c) => !anchorDers.some((d) => d.equals(c.der))) };
}

/**
 * Why an installed certificate no longer fits its template (the kubelet's template check plus
 * chain and validity), or undefined when it does. Without anchors the chain is not checked, without
 * `now` the expiry (renewal decides expiry by its own deadline rule).
 */
export function mismatch(
  cert: CertInfo,
  template: CertTemplate,
  anchors: CertInfo[] | undefined,
  now: Date | undefined,
  intermediates: CertInfo[] = [],
): string | undefined {
  if (cert.commonName !== template.commonName)
    return `CN is "${cert.commonName}", want "${template.commonName}"`;
  const missingO = template.organizations.filter((o) => !cert.organizations.includes(o));
  if (missingO.length) return `O lacks ${missingO.join(", ")}`;
  const missing = [
    ...template.sans.dnsNames.filter((d) => !cert.dnsNames.includes(d)),
    ...template.sans.ips.filter((ip) => !cert.ips.includes(ip)),
  ];
  if (missing.length) return `SANs lack ${missing.join(", ")}`;
  const missingEku = template.usages.filter((u) => !cert.ekus.includes(u));
  if (missingEku.length) return `extended key usage lacks ${missingEku.join(", ")}`;
  if (anchors && !buildChain(cert, intermediates, anchors))
    return "does not chain to the installed CA";
  if (now && cert.notAfter.getTime() <= now.getTime())
    return `expired at ${cert.notAfter.toISOString()}`;
  return undefined;
}
