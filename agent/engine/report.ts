// What a run leaves for the operator besides its files: the metrics textfile refreshed with the
// run's outcome, and the `status` view of every certificate and CA of the role. Both read the
// installed state through the one reader (pki/installed.ts).
import { createPrivateKey } from "node:crypto";
import { join } from "node:path";
import type { Settings } from "../config/settings.js";
import { refreshMetrics, type RunMetric } from "../ops/metrics.js";
import { detectTimerEnv, timerStatus, type TimerStatus } from "../ops/timer.js";
import { CAS, casFor, type CaName } from "../pki/cas.js";
import { deadlinePolicy } from "../pki/deadline.js";
import { keyMatches, readCaFile, readRole } from "../pki/installed.js";
import { describeKey } from "../pki/keys.js";
import type { Role } from "../pki/roles.js";
import { inspect } from "../store/fsio.js";
import { hostPath, type Layout } from "../store/layout.js";
import { readState } from "../store/state.js";
import type { Runtime } from "./runtime.js";

/** Refreshes the metrics textfile with a run's outcome; never fails the run. */
export function reportRun(s: Settings, rt: Runtime, run: RunMetric, nodeName?: string): void {
  const policy = deadlinePolicy(nodeName ?? s.nodeName ?? "", s.renew.beforeMs);
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

export interface CertStatus {
  name: string;
  file: string;
  expires?: string;
  residualSeconds?: number;
  certificateAuthority: string;
  keyType?: string;
  externallyManaged: boolean;
  managed: boolean;
  problem?: string;
}

export interface CaStatus {
  name: string;
  file: string;
  expires?: string;
  residualSeconds?: number;
  externallyManaged: boolean;
  problem?: string;
}

export interface StatusResult {
  ok: true;
  command: "status";
  role: Role;
  certificates: CertStatus[];
  certificateAuthorities: CaStatus[];
  /** The renewal timer; its `problem` needs attention like a certificate's. */
  timer: TimerStatus;
}

/**
 * kubeadm's `certs check-expiration` for what is on disk, plus key type and whether node-join
 * manages it, and the renewal timer. `timerWanted`: a missing timer is a problem (a joined node
 * whose config does not say timer.enabled: false).
 */
export function collectStatus(role: Role, l: Layout, now: Date, timerWanted = false): StatusResult {
  const state = readState(l);
  const external = (ca: CaName) => inspect(join(l.pkiDir, CAS[ca].keyFile)).kind === "missing";
  const residual = (d: Date) => Math.floor((d.getTime() - now.getTime()) / 1000);
  const certificates = readRole(role, l).map((r): CertStatus => {
    const base = {
      name: r.kind.name,
      file: hostPath(r.file, l.root),
      certificateAuthority: CAS[r.kind.ca].kind,
      externallyManaged: external(r.kind.ca),
    };
    if (!r.installed) return { ...base, managed: false, problem: r.problem ?? "missing" };
    const leaf = r.installed.chain[0]!;
    let keyType: string | undefined;
    let problem: string | undefined;
    try {
      keyType = describeKey(createPrivateKey(r.installed.keyPem));
      if (!keyMatches(r.installed)) problem = "key does not match certificate";
    } catch {
      problem = "private key unreadable";
    }
    if (!problem && leaf.notAfter <= now) problem = "expired";
    return {
      ...base,
      expires: leaf.notAfter.toISOString(),
      residualSeconds: residual(leaf.notAfter),
      ...(keyType ? { keyType } : {}),
      managed: state.certificates[r.kind.name]?.serial === leaf.serial,
      ...(problem ? { problem } : {}),
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
      return { ...base, problem: inspect(file).kind === "missing" ? "missing" : "unreadable" };
    const c = certs[0]!;
    return { ...base, expires: c.notAfter.toISOString(), residualSeconds: residual(c.notAfter) };
  });
  const timer = timerStatus(detectTimerEnv(l), now, timerWanted);
  return { ok: true, command: "status", role, certificates, certificateAuthorities, timer };
}
