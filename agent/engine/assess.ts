// The one place that decides what to issue, and says why (after cloudflare/certmgr's cert/spec.go
// and the kubelet's certificate manager): for every kind of the role, the installed state against
// today's template, key match, chain, validity, the deadline rule and force. Join and renew differ
// only in the policy they pass.
import { isoDate } from "../common/time.js";
import type { CaName } from "../pki/cas.js";
import { templateFor, type CertKind, type CertTemplate, type TableContext } from "../pki/certs.js";
import { dueness, type DeadlinePolicy, type SignerChange } from "../pki/deadline.js";
import { keyMatches, type KindReading } from "../pki/installed.js";
import { keyAlgorithmChange, type KeyAlgorithm } from "../pki/keys.js";
import { mismatch, type RequestedSans } from "../pki/verify.js";
import { buildChain, type CertInfo } from "../pki/x509.js";

export interface AssessPolicy {
  /** Re-issue every kind that nothing else makes due. */
  force: boolean;
  /** When a valid certificate falls due (renew); without one only expiry makes it due (join). */
  deadline?: DeadlinePolicy;
  /** The CA certificates an installed chain must lead to; undefined: the chain is not checked. */
  anchors: (ca: CaName) => CertInfo[] | undefined;
  /** The SAN sets the kind's CA is asked for (a CA may be asked for more than the template). */
  requestedSans?: (ca: CaName, template: CertTemplate) => RequestedSans[];
  /** The configured key algorithm: an installed key of another one is replaced. */
  keyAlgorithm?: KeyAlgorithm;
  /**
   * renew.onSignerChange early: the CA's current signer and when it was first seen; a certificate
   * that does not chain to it gets the early deadline (pki/deadline.ts signerChangeDeadline).
   */
  signerChange?: (ca: CaName) => { signer: CertInfo; change: SignerChange } | undefined;
  now: Date;
}

export interface Assessment {
  kind: CertKind;
  template: CertTemplate;
  reading: KindReading;
  /** Why the kind must be issued; undefined: keep what is installed. */
  reason?: string;
  /** The installed certificate had expired. */
  expired: boolean;
  /** When a kept certificate falls due under the deadline rule. */
  deadline?: Date;
}

export function assessKind(
  reading: KindReading,
  template: CertTemplate,
  p: AssessPolicy,
): Assessment {
  const base = { kind: reading.kind, template, reading, expired: false };
  const inst = reading.installed;
  if (!inst) return { ...base, reason: reading.problem ?? "missing" };
  if (!keyMatches(inst)) return { ...base, reason: "installed key does not match its certificate" };
  const [leaf, ...intermediates] = inst.chain as [CertInfo, ...CertInfo[]];
  // A changed name or IP is due at once, like the kubelet's template check.
  const ca = reading.kind.ca;
  const requested = p.requestedSans?.(ca, template);
  const why = mismatch(leaf, template, p.anchors(ca), undefined, intermediates, requested);
  if (why) return { ...base, reason: why };
  // A changed --key-algorithm takes effect at once, like a changed name: the key is generated anew.
  // (keyMatches parsed the key: it is a readable private key.)
  const algorithm = p.keyAlgorithm && keyAlgorithmChange(inst.keyPem, p.keyAlgorithm);
  if (algorithm) return { ...base, reason: `key algorithm changed (${algorithm})` };
  if (p.deadline) {
    const sc = p.signerChange?.(ca);
    const retiring = sc && !buildChain(leaf, intermediates, [sc.signer]);
    const d = dueness(leaf, p.deadline, p.now, retiring ? sc.change : undefined);
    if (d.due) return { ...base, reason: d.reason, expired: d.expired };
    return p.force ? { ...base, reason: "forced" } : { ...base, deadline: d.deadline };
  }
  if (leaf.notAfter.getTime() <= p.now.getTime()) {
    return { ...base, reason: `expired at ${isoDate(leaf.notAfter)}`, expired: true };
  }
  return p.force ? { ...base, reason: "forced" } : base;
}

export function assess(readings: KindReading[], ctx: TableContext, p: AssessPolicy): Assessment[] {
  return readings.map((r) => assessKind(r, templateFor(r.kind, ctx), p));
}

export const due = (all: Assessment[]): Assessment[] => all.filter((a) => a.reason !== undefined);
export const kept = (all: Assessment[]): Assessment[] => all.filter((a) => a.reason === undefined);

/** The kept certificate that falls due first, with its deadline. */
export function nextDue(all: Assessment[]): { kind: string; deadline: Date } | undefined {
  let next: { kind: string; deadline: Date } | undefined;
  for (const a of kept(all))
    if (a.deadline && (!next || a.deadline < next.deadline))
      next = { kind: a.kind.name, deadline: a.deadline };
  return next;
}

/** The earliest deadline among the kept certificates. */
export const nextDeadline = (all: Assessment[]): Date | undefined => nextDue(all)?.deadline;
