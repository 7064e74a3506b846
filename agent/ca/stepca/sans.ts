// The names node-join asks step-ca for: the CSR's SANs and a token's "sans" claim, and how step-ca
// types the latter. Assessment and verification both read them through the registry
// (ca/index.ts requestedSansFor).
import { ipFamily } from "../../common/ip.js";
import type { CertTemplate } from "../../pki/certs.js";
import type { RequestedSans } from "../../pki/verify.js";

/**
 * The "sans" claim of the token for `template`: its SANs, or [CN] when it has none, as `step ca
 * token <CN>` writes it (an empty claim is no different: step-ca's JWK provisioner then takes
 * [sub], authority/provisioner/jwk.go).
 */
export function tokenSans(template: CertTemplate): string[] {
  const sans = [...template.sans.dnsNames, ...template.sans.ips];
  return sans.length ? sans : [template.commonName];
}

/**
 * How step-ca types the names of a token's "sans" (go.step.sm/crypto x509util.SplitSANs): an IP,
 * a URI when Go's url.Parse finds a scheme ("system:node:w1"), an e-mail address when it holds
 * "@", else a DNS name.
 */
export function stepCaSanSet(names: string[]): RequestedSans {
  const out = {
    dnsNames: [] as string[],
    ips: [] as string[],
    uris: [] as string[],
    emails: [] as string[],
  };
  for (const n of names) {
    if (ipFamily(n)) out.ips.push(n);
    else if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(n))
      out.uris.push(n.replace(/^[^:]+/, (scheme) => scheme.toLowerCase()));
    else if (n.includes("@")) out.emails.push(n);
    else out.dnsNames.push(n);
  }
  return out;
}

/**
 * What node-join asks step-ca for: the CSR's SANs (the template's) and the token's "sans". A
 * provisioner template that copies the CSR's SANs issues the first, one that uses the token's
 * (step-ca's default `"sans": {{ toJson .SANs }}`) the second: for a kind without SANs, the CN
 * as its one SAN. Exactly one of them, nothing else, is what was requested.
 */
export function stepCaRequestedSans(template: CertTemplate): RequestedSans[] {
  const { dnsNames, ips } = template.sans;
  // With SANs, the token's "sans" are the same names (mintToken, tokenFits).
  return dnsNames.length + ips.length
    ? [template.sans]
    : [template.sans, stepCaSanSet(tokenSans(template))];
}
