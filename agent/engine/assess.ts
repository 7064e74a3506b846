// The one place that decides what to issue, and says why (after cloudflare/certmgr's cert/spec.go
// and the kubelet's certificate manager): for every kind of the role, the installed state against
// today's template, key match, chain, validity, the deadline rule and force. Join and renew differ
// only in the policy they pass.
import { requestedSansFor } from "../ca/index.js";
import { isoDate } from "../common/time.js";
import type { Settings } from "../config/settings.js";
import type { CaName } from "../pki/cas.js";
import { templateFor, type CertKind, type CertTemplate, type TableContext } from "../pki/certs.js";
import {
  deadlinePolicy,
  dueness,
  type DeadlinePolicy,
  type SignerChange,
} from "../pki/deadline.js";
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

/**
 * What the assessment found, as a word that status, metrics and the issuing engine act on (the
 * sentence is `reason`): kubeadm's renewal Manager and certmgr's spec check return the same kind
 * of verdict to every caller.
 */
export type Cause =
  /** Kept: nothing makes it due. */
  | "ok"
  /** Not there, unreadable, or a link that leads nowhere (the reading's problem). */
  | "missing"
  | "key-mismatch"
  /** CN, O, SANs or EKUs differ from what this node would ask for now. */
  | "template"
  /** Does not chain to the CA's anchors (another CA, a retired one). */
  | "chain"
  | "key-algorithm"
  | "expired"
  /** Valid, past its renewal deadline (or a retiring signer's early one). */
  | "due"
  | "forced";

export interface Assessment {
  kind: CertKind;
  template: CertTemplate;
  reading: KindReading;
  /** Why the kind must be issued; undefined: keep what is installed. */
  reason?: string;
  /** The verdict behind `reason` ("ok" when kept). */
  cause: Cause;
  /**
   * The installed certificate can authenticate its own renewal at its CA: it is there with its
   * key, chains to the anchors, and names exactly what would be asked for now (a renewal keeps
   * the names). Expiry is the backend's to judge (step-ca: allowRenewalAfterExpiry). Otherwise
   * the kind must be enrolled again.
   */
  renewable: boolean;
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
  return { kind: reading.kind, template, reading, ...verdictOf(reading, template, p) };
}

/** An assessment's verdict, without what it was made of. */
export type Verdict = Omit<Assessment, "kind" | "template" | "reading">;

/**
 * The verdict on one installed kind. `template` undefined: what this node would ask for is not
 * known (status on a tree with no config, leave), so names are not compared; everything else is
 * judged as for renew.
 */
export function verdictOf(
  reading: KindReading,
  template: CertTemplate | undefined,
  p: AssessPolicy,
): Verdict {
  const inst = reading.installed;
  if (!inst)
    return {
      cause: "missing",
      reason: reading.problem ?? "missing",
      expired: false,
      renewable: false,
    };
  const [leaf, ...intermediates] = inst.chain as [CertInfo, ...CertInfo[]];
  // Whatever else is wrong, an expired certificate is said to be (leave revokes none of those).
  const base = { expired: leaf.notAfter.getTime() <= p.now.getTime(), renewable: false };
  if (!keyMatches(inst))
    return {
      ...base,
      cause: "key-mismatch",
      reason: "installed key does not match its certificate",
    };
  // A changed name or IP is due at once, like the kubelet's template check.
  const ca = reading.kind.ca;
  if (template) {
    const requested = p.requestedSans?.(ca, template);
    const names = mismatch(leaf, template, undefined, undefined, intermediates, requested);
    if (names) return { ...base, cause: "template", reason: names };
  }
  const anchors = p.anchors(ca);
  if (anchors && !buildChain(leaf, intermediates, anchors))
    return { ...base, cause: "chain", reason: "does not chain to the installed CA" };
  const renewable = { ...base, renewable: true };
  // A changed --key-algorithm takes effect at once, like a changed name: the key is generated anew.
  // (keyMatches parsed the key: it is a readable private key.)
  const algorithm = p.keyAlgorithm && keyAlgorithmChange(inst.keyPem, p.keyAlgorithm);
  if (algorithm)
    return { ...renewable, cause: "key-algorithm", reason: `key algorithm changed (${algorithm})` };
  if (p.deadline) {
    const sc = p.signerChange?.(ca);
    const retiring = sc && !buildChain(leaf, intermediates, [sc.signer]);
    const d = dueness(leaf, p.deadline, p.now, retiring ? sc.change : undefined);
    if (d.due) return { ...renewable, cause: d.expired ? "expired" : "due", reason: d.reason };
    return p.force
      ? { ...renewable, cause: "forced", reason: "forced" }
      : { ...renewable, cause: "ok", deadline: d.deadline };
  }
  if (base.expired)
    return { ...renewable, cause: "expired", reason: `expired at ${isoDate(leaf.notAfter)}` };
  return p.force
    ? { ...renewable, cause: "forced", reason: "forced" }
    : { ...renewable, cause: "ok" };
}

/**
 * What renew's assessment takes from the settings (run.ts), given the node's name: the deadline
 * rule, the SANs each CA type is asked for, the key algorithm. status assesses with the same, so
 * it needs attention exactly when renew --dry-run would re-issue.
 */
export function settingsInputs(
  s: Settings,
  nodeName: string,
): Required<Pick<AssessPolicy, "deadline" | "requestedSans" | "keyAlgorithm">> {
  return {
    deadline: deadlinePolicy(nodeName, s.renew),
    requestedSans: (ca, t) => requestedSansFor(s.cas[ca].type, t),
    keyAlgorithm: s.keyAlgorithm,
  };
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
