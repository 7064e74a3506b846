// Checks an issued certificate against what was asked for, before anything touches the disk.
import type { CertTemplate } from "./certs.js";
import { VerificationError } from "../common/errors.js";
import { isoDate } from "../common/time.js";
import { validatePath } from "./path.js";
import { buildChain, normalizeIp, parseCert, splitPemCertificates, type CertInfo } from "./x509.js";

/**
 * Clock skew tolerated between node and CA for NotBefore (kubeadm backdates by the same 5 minutes).
 */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

/**
 * One set of subject alternative names a CA was asked to put into a certificate. A backend that
 * asks in more than one way reports each set it asked for (step-ca: the CSR's, and the token's,
 * which its templates may use instead).
 */
export interface RequestedSans {
  dnsNames: string[];
  ips: string[];
  uris?: string[];
  emails?: string[];
}

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
  /**
   * The SAN sets the backend asked the CA for; the certificate must carry exactly one of them.
   * Default: the template's.
   */
  requestedSans?: RequestedSans[];
  now: Date;
}

export interface VerifiedCert {
  leaf: CertInfo;
  /** Leaf then intermediates, anchor excluded: what goes into the .crt file. */
  chain: CertInfo[];
}

/**
 * Everything about an answer that node:crypto can check: the key, the subject (exactly one CN, the
 * O set), the SAN set, the EKUs, a chain of signatures to a pinned CA and the validity of each
 * certificate on it. verifyAnswer() adds full RFC 5280 path validation; an answer is only used
 * after that.
 */
export function verifyIssued(input: VerifyInput): VerifiedCert {
  const { leaf, path } = checkAnswer(input);
  return { leaf, chain: withoutAnchors(path, input.anchors) };
}

function checkAnswer(input: VerifyInput): { leaf: CertInfo; rest: CertInfo[]; path: CertInfo[] } {
  const fail = failWith(input);
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
  if (!path) return fail(`does not chain to the pinned CA (issuer CN "${leaf.issuerCommonName}")`);
  const t = input.template;
  // The API server's x509 authenticator makes CN the user and every O a group (Kubernetes
  // "Authenticating: X509 client certificates"), so both must be exactly what was asked for.
  if (leaf.commonNames.length !== 1)
    fail(
      `subject has ${leaf.commonNames.length} CNs ${JSON.stringify(leaf.commonNames)}, expected exactly one, "${t.commonName}"`,
    );
  if (leaf.commonName !== t.commonName)
    fail(`CN is "${leaf.commonName}", expected "${t.commonName}"`);
  const missingO = t.organizations.filter((o) => !leaf.organizations.includes(o));
  if (missingO.length)
    fail(
      `subject O lacks ${missingO.map((o) => `"${o}"`).join(", ")} (has ${JSON.stringify(leaf.organizations)})`,
    );
  const extraO = [...new Set(leaf.organizations.filter((o) => !t.organizations.includes(o)))];
  if (extraO.length)
    fail(
      `subject O has unrequested ${extraO.map((o) => `"${o}"`).join(", ")} (expected ${JSON.stringify(t.organizations)})`,
    );
  const sans = sanDifference(leaf, input.requestedSans ?? [t.sans]);
  if (sans) fail(sans.replace(/^SANs lack /, "SANs lack requested "));
  const missingEku = t.usages.filter((u) => !leaf.ekus.includes(u));
  if (missingEku.length) fail(`extended key usage lacks ${missingEku.join(", ")}`);
  const now = input.now.getTime();
  for (const c of path) {
    const label = c === leaf ? "it" : `chain certificate "${c.commonName}"`;
    if (c.notBefore.getTime() - CLOCK_SKEW_MS > now)
      fail(`${label} is not valid before ${isoDate(c.notBefore)}`);
    if (c.notAfter.getTime() <= now) fail(`${label} expired at ${isoDate(c.notAfter)}`);
  }
  return { leaf, rest, path };
}

/**
 * The whole check of a CA's answer: verifyIssued(), then RFC 5280 path validation from the leaf
 * to the pinned anchor (agent/pki/path.ts): basicConstraints, keyUsage, pathLenConstraint, name
 * constraints, extended key usage, signature and key algorithms, of every certificate on the path.
 * Throws VerificationError ("certificate <kind> from <CA>: <reason>", exit 5).
 */
export async function verifyAnswer(input: VerifyInput): Promise<VerifiedCert> {
  const first = checkAnswer(input);
  const now = input.now.getTime();
  // One date inside every certificate's validity, for the path validator: the latest NotBefore
  // still within the tolerated skew (verifyIssued has checked each against the skew already).
  let checkDate = now;
  for (const c of first.path) {
    const nb = c.notBefore.getTime();
    if (nb > checkDate && nb - CLOCK_SKEW_MS <= now) checkDate = nb;
  }
  const verdict = await validatePath({
    path: first.path,
    intermediates: first.rest,
    usages: input.template.usages,
    checkDate: new Date(checkDate),
  });
  if ("reason" in verdict) return failWith(input)(verdict.reason);
  return { leaf: first.leaf, chain: withoutAnchors(verdict.path, input.anchors) };
}

function failWith(input: VerifyInput): (reason: string) => never {
  return (reason) => {
    throw new VerificationError(`certificate ${input.kind} from ${input.ca}: ${reason}`);
  };
}

function withoutAnchors(path: CertInfo[], anchors: CertInfo[]): CertInfo[] {
  return path.filter((c) => !anchors.some((a) => a.der.equals(c.der)));
}

/** The SANs of a certificate, one canonical string each ("10.0.0.1", "w1", "URI:x", "email:y"). */
function certSans(cert: CertInfo): string[] {
  return [
    ...cert.dnsNames,
    ...cert.ips,
    ...cert.uris.map((u) => `URI:${u}`),
    ...cert.emails.map((e) => `email:${e}`),
    ...cert.otherSans,
  ];
}

function requestedSet(r: RequestedSans): string[] {
  return [
    ...r.dnsNames.map((d) => d.toLowerCase()),
    ...r.ips.map(normalizeIp),
    ...(r.uris ?? []).map((u) => `URI:${u}`),
    ...(r.emails ?? []).map((e) => `email:${e}`),
  ];
}

/**
 * How a certificate's SANs differ from the nearest of the requested sets ("lack a, b; include
 * unrequested c"), or undefined when they equal one of them. Sets, as client-go's
 * certSatisfiesTemplate compares them (util/certificate/certificate_manager.go).
 */
export function sanDifference(cert: CertInfo, requested: RequestedSans[]): string | undefined {
  const have = new Set(certSans(cert));
  let best: string | undefined;
  let bestSize = Infinity;
  for (const r of requested) {
    const want = new Set(requestedSet(r));
    const missing = [...want].filter((n) => !have.has(n));
    const extra = [...have].filter((n) => !want.has(n));
    if (missing.length + extra.length === 0) return undefined;
    if (missing.length + extra.length < bestSize) {
      bestSize = missing.length + extra.length;
      best = [
        ...(missing.length ? [`lack ${missing.join(", ")}`] : []),
        ...(extra.length ? [`include unrequested ${extra.join(", ")}`] : []),
      ].join("; ");
    }
  }
  return best === undefined ? undefined : `SANs ${best}`;
}

/**
 * Why an installed certificate no longer fits its template (the kubelet's template check plus
 * chain and validity), or undefined when it does. Exact, like client-go's certSatisfiesTemplate:
 * one CN, the O set and the SAN set equal to what is asked for, so a certificate with extra names
 * is issued again. Without anchors the chain is not checked, without `now` the expiry (renewal
 * decides expiry by its own deadline rule). node:crypto only: renew runs it on every node twice a
 * day.
 */
export function mismatch(
  cert: CertInfo,
  template: CertTemplate,
  anchors: CertInfo[] | undefined,
  now: Date | undefined,
  intermediates: CertInfo[] = [],
  requestedSans: RequestedSans[] = [template.sans],
): string | undefined {
  if (cert.commonNames.length !== 1)
    return `subject has ${cert.commonNames.length} CNs ${JSON.stringify(cert.commonNames)}, want one, "${template.commonName}"`;
  if (cert.commonName !== template.commonName)
    return `CN is "${cert.commonName}", want "${template.commonName}"`;
  const missingO = template.organizations.filter((o) => !cert.organizations.includes(o));
  if (missingO.length) return `O lacks ${missingO.join(", ")}`;
  const extraO = cert.organizations.filter((o) => !template.organizations.includes(o));
  if (extraO.length) return `O has unrequested ${[...new Set(extraO)].join(", ")}`;
  const sans = sanDifference(cert, requestedSans);
  if (sans) return sans;
  const missingEku = template.usages.filter((u) => !cert.ekus.includes(u));
  if (missingEku.length) return `extended key usage lacks ${missingEku.join(", ")}`;
  if (anchors && !buildChain(cert, intermediates, anchors))
    return "does not chain to the installed CA";
  if (now && cert.notAfter.getTime() <= now.getTime())
    return `expired at ${isoDate(cert.notAfter)}`;
  return undefined;
}
