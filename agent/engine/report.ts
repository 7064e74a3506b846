// What a run leaves for the operator besides its files: the metrics textfile refreshed with the
// run's outcome, and the `status` view of every certificate and CA of the role. Both read the
// installed state through the one reader (pki/installed.ts).
import { createPrivateKey } from "node:crypto";
import { join } from "node:path";
import { errorMessage } from "../common/errors.js";
import { isoDate } from "../common/time.js";
import type { Settings } from "../config/settings.js";
import { refreshMetrics, type RunMetric } from "../ops/metrics.js";
import { detectTimerEnv, timerStatus, type TimerStatus } from "../ops/timer.js";
import { CAS, casFor, type CaName } from "../pki/cas.js";
import { deadlinePolicy, dueness, type DeadlinePolicy } from "../pki/deadline.js";
import { keyMatches, readCaFile, readRole } from "../pki/installed.js";
import { describeKey } from "../pki/keys.js";
import type { Role } from "../pki/roles.js";
import { inspect } from "../store/fsio.js";
import { hostPath, type Layout } from "../store/layout.js";
import { readState } from "../store/state.js";
import type { Runtime } from "./runtime.js";

/** Refreshes the metrics textfile with a run's outcome; never fails the run. */
export function reportRun(s: Settings, rt: Runtime, run: RunMetric, nodeName?: string): void {
  const policy = deadlinePolicy(nodeName ?? s.nodeName ?? "", s.renew);
  refreshMetrics(
    {
      textfile: s.metrics.textfile,
      layout: rt.layout,
      read: () => readRole(s.role, rt.layout),
      policy,
      run,
    },
    rt.log,
  );
}

/** Runs a command and refreshes the metrics textfile with its outcome, success or failure. */
export async function withMetrics<T>(
  command: string,
  s: Settings,
  rt: Runtime,
  fn: () => Promise<T>,
  summary: (r: T) => { nodeName: string; renewed?: number },
): Promise<T> {
  try {
    const r = await fn();
    const { nodeName, renewed } = summary(r);
    reportRun(
      s,
      rt,
      {
        command,
        success: true,
        time: new Date(rt.clock.now()),
        ...(renewed === undefined ? {} : { renewed }),
      },
      nodeName,
    );
    return r;
  } catch (err) {
    reportRun(s, rt, { command, success: false, time: new Date(rt.clock.now()) });
    throw err;
  }
}

/**
 * What status says of a certificate or CA, worst first; anything but "ok" needs attention (exit 8).
 * CAs have no renewal deadline: node-join does not renew them.
 */
export const STATES = [
  "missing",
  "unreadable",
  "key mismatch",
  "expired",
  "renewal due",
  "expiring",
  "ok",
] as const;
export type EntryState = (typeof STATES)[number];

export interface CertStatus {
  name: string;
  file: string;
  expires?: string;
  residualSeconds?: number;
  /** When renew renews it (pki/deadline.ts), as renew itself computes it. */
  renewalDeadline?: string;
  certificateAuthority: string;
  keyType?: string;
  externallyManaged: boolean;
  managed: boolean;
  state: EntryState;
  /** Why it needs attention; absent when the state is ok. */
  problem?: string;
}

export interface CaStatus {
  name: string;
  file: string;
  expires?: string;
  residualSeconds?: number;
  externallyManaged: boolean;
  state: EntryState;
  problem?: string;
}

export interface StatusResult {
  ok: true;
  command: "status";
  role: Role;
  /** At least one certificate or CA is not ok: status exits 8. */
  needsAttention: boolean;
  certificates: CertStatus[];
  certificateAuthorities: CaStatus[];
  /** The renewal timer; its `problem` needs attention like a certificate's. */
  timer: TimerStatus;
}

export interface StatusPolicy {
  /** renew's deadline rule, so status shows the deadlines renew acts on. */
  deadline: DeadlinePolicy;
  /** --warn-within: also flag what expires within this (`text` as given); absent: off. */
  warnWithin?: { ms: number; text: string };
  now: Date;
}

/** A certificate's or CA's validity: expired, expiring within --warn-within, or fine. */
function validity(
  notAfter: Date,
  p: StatusPolicy,
): { state: EntryState; problem?: string } | undefined {
  const left = notAfter.getTime() - p.now.getTime();
  if (left <= 0) return { state: "expired", problem: `expired at ${isoDate(notAfter)}` };
  if (p.warnWithin && left < p.warnWithin.ms)
    return {
      state: "expiring",
      problem: `expires at ${isoDate(notAfter)}, within --warn-within ${p.warnWithin.text}`,
    };
  return undefined;
}

/**
 * kubeadm's `certs check-expiration` for what is on disk, plus the renewal deadline, key type,
 * whether node-join manages it, and a state that says what needs attention (after step's
 * `certificate needs-renewal`, which exits non-zero for what should be renewed).
 * The renewal timer is reported too; `timerWanted`: a missing timer is a problem (a joined node
 * whose config does not say timer.enabled: false).
 */
export function collectStatus(
  role: Role,
  l: Layout,
  p: StatusPolicy,
  timerWanted = false,
): StatusResult {
  const state = readState(l);
  const external = (ca: CaName) => inspect(join(l.pkiDir, CAS[ca].keyFile)).kind === "missing";
  const residual = (d: Date) => Math.floor((d.getTime() - p.now.getTime()) / 1000);
  const certificates = readRole(role, l).map((r): CertStatus => {
    const base = {
      name: r.kind.name,
      file: hostPath(r.file, l.root),
      certificateAuthority: CAS[r.kind.ca].kind,
      externallyManaged: external(r.kind.ca),
    };
    if (!r.installed) {
      const problem = r.problem ?? "missing";
      return problem === "missing"
        ? { ...base, managed: false, state: "missing", problem }
        : { ...base, managed: false, state: "unreadable", problem: `unreadable (${problem})` };
    }
    const leaf = r.installed.chain[0]!;
    let keyType: string | undefined;
    let verdict: { state: EntryState; problem?: string } | undefined;
    try {
      keyType = describeKey(createPrivateKey(r.installed.keyPem));
      if (!keyMatches(r.installed))
        verdict = { state: "key mismatch", problem: "key does not match certificate" };
    } catch (err) {
      verdict = { state: "unreadable", problem: `unreadable (private key: ${errorMessage(err)})` };
    }
    const d = dueness(leaf, p.deadline, p.now);
    verdict ??= d.due
      ? { state: d.expired ? "expired" : "renewal due", problem: d.reason }
      : validity(leaf.notAfter, p);
    return {
      ...base,
      expires: isoDate(leaf.notAfter),
      residualSeconds: residual(leaf.notAfter),
      renewalDeadline: isoDate(d.deadline),
      ...(keyType ? { keyType } : {}),
      managed: state.certificates[r.kind.name]?.serial === leaf.serial,
      ...(verdict ?? { state: "ok" }),
    };
  });
  const certificateAuthorities = casFor(role).map((ca): CaStatus => {
    const file = join(l.pkiDir, ca.file);
    const certs = readCaFile(ca, l);
    const base = {
      name: ca.kind,
      file: hostPath(file, l.root),
      externallyManaged: external(ca.name),
    };
    if (!certs)
      return inspect(file).kind === "missing"
        ? { ...base, state: "missing", problem: "missing" }
        : { ...base, state: "unreadable", problem: "unreadable" };
    const c = certs[0]!;
    return {
      ...base,
      expires: isoDate(c.notAfter),
      residualSeconds: residual(c.notAfter),
      ...(validity(c.notAfter, p) ?? { state: "ok" }),
    };
  });
  const timer = timerStatus(detectTimerEnv(l), p.now, timerWanted);
  const needsAttention =
    [...certificates, ...certificateAuthorities].some((e) => e.state !== "ok") ||
    timer.problem !== undefined;
  return {
    ok: true,
    command: "status",
    role,
    needsAttention,
    certificates,
    certificateAuthorities,
    timer,
  };
}
