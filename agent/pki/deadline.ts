// When a certificate is due: the kubelet's rule, NotBefore + lifetime x U[0.7, 0.9), with the
// random fraction derived from the certificate and the node, so every run agrees on the same
// deadline and a fleet issued at once does not renew at once.
import { createHash } from "node:crypto";
import { isoDate, shortHumanDuration } from "../common/time.js";

export const JITTER_LOW = 0.7;
export const JITTER_HIGH = 0.9;

/** A number in [0, 1) that depends only on its inputs: 53 bits of their SHA-256. */
function uniform(...parts: string[]): number {
  const digest = createHash("sha256").update(parts.join("\0")).digest();
  return Number(digest.readBigUInt64BE(0) >> 11n) / 2 ** 53;
}

/** A fraction in [0.7, 0.9) that depends only on the serial and the node name. */
export function jitterFraction(serial: string, nodeName: string): number {
  return JITTER_LOW + (JITTER_HIGH - JITTER_LOW) * uniform(serial.toLowerCase(), nodeName);
}

/**
 * A CA switched to a new signer while this certificate is still signed by the retiring one
 * (renew.onSignerChange: early): the node first saw the new signer at `seenAt`.
 */
export interface SignerChange {
  seenAt: Date;
  /** renew.signerChangeWindow: the early renewals spread over this long after seenAt. */
  windowMs: number;
  /** The new signer's CN, for the reason. */
  signer: string;
}

/**
 * The early deadline of a certificate signed by a retiring CA: seenAt + window x U[0, 1), the
 * fraction derived from the serial and the node name like the kubelet rule's (a different draw),
 * so a fleet that sees the switch at once spreads its renewals over the window instead of asking
 * the new signer all at the same time.
 */
export function signerChangeDeadline(cert: CertTimes, nodeName: string, c: SignerChange): Date {
  const u = uniform(cert.serial.toLowerCase(), nodeName, "signer-change");
  return new Date(c.seenAt.getTime() + c.windowMs * u);
}

export interface CertTimes {
  notBefore: Date;
  notAfter: Date;
  serial: string;
}

export interface DeadlinePolicy {
  nodeName: string;
  /** renew.before: renew when less than this remains (replaces the kubelet rule). */
  beforeMs?: number;
  /**
   * The setting that gave that duration, as the reasons name it ("--before 400d",
   * "NODE_JOIN_BEFORE=400d", "renew.before: 400d"): never a key the user did not set.
   */
  beforeFrom?: string;
}

/** The policy renew decides by; the metrics report the same deadlines from it. */
export function deadlinePolicy(
  nodeName: string,
  renew: Omit<DeadlinePolicy, "nodeName">,
): DeadlinePolicy {
  const { beforeMs, beforeFrom } = renew;
  if (beforeMs === undefined) return { nodeName };
  return beforeFrom === undefined ? { nodeName, beforeMs } : { nodeName, beforeMs, beforeFrom };
}

export function renewalDeadline(cert: CertTimes, policy: DeadlinePolicy): Date {
  const start = cert.notBefore.getTime();
  const end = cert.notAfter.getTime();
  if (policy.beforeMs !== undefined) return new Date(end - policy.beforeMs);
  return new Date(start + (end - start) * jitterFraction(cert.serial, policy.nodeName));
}

export type Due =
  { due: false; deadline: Date } | { due: true; deadline: Date; reason: string; expired: boolean };

/** Whether a valid, template-matching certificate is due now. */
export function dueness(
  cert: CertTimes,
  policy: DeadlinePolicy,
  now: Date,
  change?: SignerChange,
): Due {
  const normal = renewalDeadline(cert, policy);
  const early = change && signerChangeDeadline(cert, policy.nodeName, change);
  const deadline = early && early < normal ? early : normal;
  const expired = cert.notAfter.getTime() <= now.getTime();
  if (expired)
    return { due: true, deadline, expired, reason: `expired at ${isoDate(cert.notAfter)}` };
  if (early && deadline === early && now.getTime() >= early.getTime())
    return {
      due: true,
      deadline,
      expired,
      reason: `signed by a retiring CA: the CA signs with "${change.signer}" since ${isoDate(change.seenAt)} (renew.onSignerChange: early, due at ${isoDate(early)})`,
    };
  if (now.getTime() >= deadline.getTime())
    return { due: true, deadline, expired, reason: whyDue(cert, policy, deadline) };
  return { due: false, deadline };
}

/** Why a valid certificate is due, in terms of the setting that made it so. */
function whyDue(cert: CertTimes, policy: DeadlinePolicy, deadline: Date): string {
  if (policy.beforeMs === undefined) return `past its renewal deadline (${isoDate(deadline)})`;
  const from = policy.beforeFrom ?? `renew.before (${shortHumanDuration(policy.beforeMs)})`;
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  // A duration at least the whole lifetime makes every certificate due the moment it is issued.
  if (policy.beforeMs >= lifetime)
    return `${from} is at least its whole lifetime (${shortHumanDuration(lifetime)}): due on every run`;
  return `less than ${from} remains (since ${isoDate(deadline)})`;
}
