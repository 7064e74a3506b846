// When a certificate is due: the kubelet's rule, NotBefore + lifetime x U[0.7, 0.9), with the
// random fraction derived from the certificate and the node, so every run agrees on the same
// deadline and a fleet issued at once does not renew at once.
import { createHash } from "node:crypto";

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
}

/** The policy renew decides by; the metrics report the same deadlines from it. */
export function deadlinePolicy(nodeName: string, beforeMs: number | undefined): DeadlinePolicy {
  return beforeMs === undefined ? { nodeName } : { nodeName, beforeMs };
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
    return { due: true, deadline, expired, reason: `expired at ${cert.notAfter.toISOString()}` };
  if (now.getTime() >= deadline.getTime()) {
    const why =
      policy.beforeMs !== undefined
        ? "less than renew.before remains"
        : "past its renewal deadline";
    return { due: true, deadline, expired, reason: `${why} (${deadline.toISOString()})` };
  }
  return { due: false, deadline };
}
