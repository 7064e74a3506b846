// When a certificate is due: the kubelet's rule, NotBefore + lifetime x U[0.7, 0.9), with the
// random fraction derived from the certificate and the node, so every run agrees on the same
// deadline and a fleet issued at once does not renew at once.
import { createHash } from "node:crypto";
import { isoDate, shortHumanDuration } from "../common/time.js";

export const JITTER_LOW = 0.7;
export const JITTER_HIGH = 0.9;

/** A fraction in [0.7, 0.9) that depends only on the serial and the node name. */
export function jitterFraction(serial: string, nodeName: string): number {
  const digest = createHash("sha256").update(`${serial.toLowerCase()}\0${nodeName}`).digest();
  const u = Number(digest.readBigUInt64BE(0) >> 11n) / 2 ** 53; // 53 random bits: uniform in [0, 1)
  return JITTER_LOW + (JITTER_HIGH - JITTER_LOW) * u;
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
export function dueness(cert: CertTimes, policy: DeadlinePolicy, now: Date): Due {
  const deadline = renewalDeadline(cert, policy);
  const expired = cert.notAfter.getTime() <= now.getTime();
  if (expired)
    return { due: true, deadline, expired, reason: `expired at ${isoDate(cert.notAfter)}` };
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
