// What a run leaves for the operator besides its files: the metrics textfile refreshed with the
// run's outcome, and the `status` view of every certificate and CA of the role. Both read the
// installed state through the one reader (pki/installed.ts).
import { createPrivateKey } from "node:crypto";
import { join } from "node:path";
import { renewalPathFor, type CaSettings } from "../ca/index.js";
import { anchorOf, loadPemFile, trustConfigured, type TrustAnchors } from "../ca/trust.js";
import { ClockNotSetError, errorMessage, NodeJoinError } from "../common/errors.js";
import { isoDate, shortHumanDuration } from "../common/time.js";
import type { Settings } from "../config/settings.js";
import { metricsEnabled, refreshMetrics, type RunMetric } from "../ops/metrics.js";
import { detectTimerEnv, timerStatus, type TimerStatus } from "../ops/timer.js";
import { CAS, caSetting, casFor, type CaDescriptor, type CaName } from "../pki/cas.js";
import { templateFor, type TableContext } from "../pki/certs.js";
import { deadlinePolicy, renewalDeadline, type DeadlinePolicy } from "../pki/deadline.js";
import {
  readCaFile,
  readRole,
  readRoleCas,
  subjectLine,
  type KindReading,
} from "../pki/installed.js";
import { describeKey, type KeyAlgorithm } from "../pki/keys.js";
import type { Role } from "../pki/roles.js";
import { certPin, type CertInfo } from "../pki/x509.js";
import { inspect } from "../store/fsio.js";
import { hostPath, type Layout } from "../store/layout.js";
import { readState } from "../store/state.js";
import { checkEnvironmentFile } from "../store/strict-modes.js";
import {
  settingsInputs,
  verdictOf,
  type AssessPolicy,
  type Cause,
  type Verdict,
} from "./assess.js";
import { clockProblem, clockVerdict, readFloor, synchronised } from "./clock.js";
import { resolveIdentity, tableContext } from "./identity.js";
import type { Runtime } from "./runtime.js";
import { identityStatus, type IdentityStatus } from "./tpm-identity.js";

/** What a joined node's certificates are judged by, as renew judges them: see judgedBy. */
export interface Judged {
  deadline: DeadlinePolicy;
  assess: StatusAssessInputs;
}

/**
 * renew's own inputs (assess.ts settingsInputs) for the node as renew discovers it (its name and
 * addresses, engine/identity.ts), so status and the metrics need attention exactly when renew
 * --dry-run would re-issue.
 */
export async function judgedBy(s: Settings, l: Layout): Promise<Judged> {
  const id = await resolveIdentity(s, "sysfs");
  const i = settingsInputs(s, id.nodeName);
  const signerChange = seenSigners(s, l);
  return {
    deadline: i.deadline,
    assess: {
      ctx: tableContext(s, id),
      requestedSans: i.requestedSans,
      keyAlgorithm: i.keyAlgorithm,
      ...(signerChange ? { signerChange } : {}),
    },
  };
}

/**
 * renew.onSignerChange early, offline: the signer renew last saw for each CA (the state file's
 * record, run.ts signerChanges), found by its pin in the installed CA file while that holds more
 * than one certificate (a rotation's overlap). A signer the CA file does not hold (step-ca's
 * intermediate) is known only to renew, which reaches the CA.
 */
function seenSigners(s: Settings, l: Layout): AssessPolicy["signerChange"] {
  if (s.renew.onSignerChange !== "early") return undefined;
  const seen = readState(l).signers ?? {};
  return (ca) => {
    const record = seen[ca];
    const bundle = readCaFile(CAS[ca], l) ?? [];
    const signer = record && bundle.length > 1 && bundle.find((c) => certPin(c) === record.pin);
    const seenAt = new Date(record?.seenAt ?? NaN);
    if (!signer || Number.isNaN(seenAt.getTime())) return undefined;
    const change = { seenAt, windowMs: s.renew.signerChangeWindowMs, signer: signer.commonName };
    return { signer, change };
  };
}

/**
 * The verdict of renew's assessment on one installed kind, offline: the installed CA files are the
 * anchors, as for renew before it reaches the CAs. Without `a` names are not compared.
 */
function judge(
  r: KindReading,
  l: Layout,
  deadline: DeadlinePolicy,
  a: StatusAssessInputs | undefined,
  now: Date,
): Verdict {
  return verdictOf(r, a && templateFor(r.kind, a.ctx), {
    force: false,
    deadline,
    anchors: (ca) => readCaFile(CAS[ca], l),
    ...(a ? { requestedSans: a.requestedSans, keyAlgorithm: a.keyAlgorithm } : {}),
    ...(a?.signerChange ? { signerChange: a.signerChange } : {}),
    now,
  });
}

/**
 * Refreshes the metrics textfile with a run's outcome; never fails the run. `judged`: what status
 * judged by; otherwise found here, and when the node cannot be resolved (the run failed at it)
 * certificates are judged without their names.
 */
export async function reportRun(
  s: Settings,
  rt: Runtime,
  run: RunMetric,
  nodeName?: string,
  judged?: Judged,
): Promise<void> {
  if (!metricsEnabled(s.metrics.textfile)) return;
  const j = judged ?? (await judgedBy(s, rt.layout).catch(() => undefined));
  const deadline = j?.deadline ?? deadlinePolicy(nodeName ?? s.nodeName ?? "", s.renew);
  const now = new Date(rt.clock.now());
  refreshMetrics(
    {
      textfile: s.metrics.textfile,
      layout: rt.layout,
      read: () => readRole(s.role, rt.layout),
      readCas: () => readRoleCas(s.role, rt.layout),
      cause: (r) => judge(r, rt.layout, deadline, j?.assess, now).cause,
      policy: deadline,
      run,
      identity: () => {
        const id = identityStatus(s.role, s.cas, rt.layout, (f) => f);
        return { where: id.where, secretFiles: id.secretFiles.length };
      },
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
    await reportRun(
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
    const clock =
      err instanceof ClockNotSetError ? { clockNotSet: { offsetMs: err.offsetMs ?? 0 } } : {};
    await reportRun(s, rt, { command, success: false, time: new Date(rt.clock.now()), ...clock });
    throw err;
  }
}

/**
 * What status says of a certificate or CA, worst first; anything but "ok" needs attention (exit 8).
 * A certificate's state is the assessment's cause (engine/assess.ts), the one renew acts on:
 * "mismatch" its names differ from what this node would ask for now, "untrusted" it does not chain
 * to the installed CA, "key algorithm" its key is not of the configured algorithm.
 * CAs have no renewal deadline: node-join does not renew them. "unpinned": a CA certificate on disk
 * that none of the CA's configured pins covers.
 */
export const STATES = [
  "missing",
  "unreadable",
  "key mismatch",
  "untrusted",
  "mismatch",
  "key algorithm",
  "expired",
  "unpinned",
  "clock not set",
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
  /** The assessment's verdict (engine/assess.ts Cause): what renew --dry-run would act on. */
  cause: Cause;
  /** Why it needs attention; absent when the state is ok. */
  problem?: string;
}

/**
 * Which of the CA's configured trust settings covers a CA certificate on disk (ca/trust.ts
 * anchorOf, the rule the bundle keeps it by): a `certHashes` pin of its key, the step-ca root
 * `fingerprint` of its DER, or the `caFile` it is one of;
 * "none" when trust is configured but covers it not (state unpinned), "not configured" when the CA
 * has no trust setting at all (CA files node-join did not authenticate: kubeadm's, or a join with
 * --unsafe-skip-ca-verification), which is not flagged.
 */
export type PinnedBy = "certHashes" | "fingerprint" | "caFile" | "none" | "not configured";

/** One certificate of a CA file: during a rotation the file holds the old and the new CA. */
export interface CaStatus {
  /** kubeadm's name for the CA ("ca"); "ca (2)" for the second certificate in its file. */
  name: string;
  file: string;
  expires?: string;
  residualSeconds?: number;
  /** RFC 4514 form, most specific RDN first: "CN=kubernetes-ca". */
  subject?: string;
  /** SPKI pin, sha256:<hex>, as --ca-cert-hash takes it. */
  pin?: string;
  pinnedBy?: PinnedBy;
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
  /**
   * The renewal unit's environment file, when renew, join and trust refuse it (another user owns
   * it or may write it): needs attention.
   */
  environmentFile?: { file: string; problem: string };
  /** How renew will authenticate to each CA of the role (given the node's settings). */
  renewalPaths?: RenewalPathStatus[];
  /** Where the node's enrolment identity lives, and the secret files a copy of the disk carries. */
  identity?: IdentityStatus;
  /** The host's clock: not set, it needs attention (exit 11) and nothing is judged by it. */
  clock?: ClockStatus;
}

export interface ClockStatus {
  /** "not set": before its floor (engine/clock.ts; status asks no CA for its Date). */
  state: "set" | "not set";
  now: string;
  /** The time the clock cannot be before, and what says so. */
  floor: string;
  floorSource: string;
  /** What systemd says (engine/clock.ts synchronised); absent: nothing says. */
  synchronised?: boolean;
  problem?: string;
}

/** The states a clock decides: with the clock not set, none of them is given. */
const BY_CLOCK: ReadonlySet<EntryState> = new Set(["expired", "renewal due", "expiring"]);

/** The clock of this root as status reports it (no CA is asked: only the floor is checked). */
export function clockStatus(role: Role, l: Layout, now: Date, toleranceMs: number): ClockStatus {
  const floor = readFloor(role, l);
  const v = clockVerdict(now, floor, undefined, toleranceMs);
  const sync = synchronised(l);
  return {
    state: v.state === "ok" ? "set" : "not set",
    now: isoDate(now),
    floor: isoDate(floor.at),
    floorSource: floor.source,
    ...(sync !== undefined ? { synchronised: sync } : {}),
    ...(v.state !== "ok" ? { problem: clockProblem(v) } : {}),
  };
}

/**
 * The status with a clock that is not set: no certificate or CA is called expired, due or
 * expiring by it (their state says the clock instead), no residual is given, and the clock needs
 * attention.
 */
export function unjudgedByClock(r: StatusResult, clock: ClockStatus): StatusResult {
  if (clock.state === "set") return { ...r, clock };
  const unjudged = <T extends CertStatus | CaStatus>(e: T): T => {
    const { residualSeconds: _, ...rest } = e;
    if (!BY_CLOCK.has(e.state)) return rest as T;
    return {
      ...rest,
      state: "clock not set",
      problem: "not judged: the host's clock is not set",
    } as T;
  };
  return {
    ...r,
    needsAttention: true,
    certificates: r.certificates.map(unjudged),
    certificateAuthorities: r.certificateAuthorities.map(unjudged),
    clock,
  };
}

export interface RenewalPathStatus {
  /** The CA, as --ca picks it: kubernetes, front-proxy, etcd. */
  ca: string;
  /** Its backend type (cfssl, step-ca). */
  type: string;
  /** "auth key /etc/node-join/ca-auth.key", "mTLS with the current certificate", … */
  path: string;
}

export interface StatusPolicy {
  /** renew's deadline rule, so status shows the deadlines renew acts on. */
  deadline: DeadlinePolicy;
  /**
   * What renew would ask for besides the deadline (assessInputs): the node's table context, the
   * SANs each CA is asked for, the key algorithm. Absent (no config): names are not compared.
   */
  assess?: StatusAssessInputs;
  /** --warn-within: also flag what expires within this (`text` as given); absent: off. */
  warnWithin?: { ms: number; text: string };
  /** Each CA's trust settings, to say which one covers each CA certificate; absent: none. */
  trust?: Partial<Record<CaName, CaTrust>>;
  /** Each CA's settings and renew.authKey, for the renewal paths; absent: none shown. */
  renewal?: { cas: Record<CaName, CaSettings>; authKeyDropped: boolean };
  now: Date;
}

export type CaTrust = TrustAnchors;

/** What status assesses with besides the deadline rule: see assess.ts settingsInputs. */
export interface StatusAssessInputs {
  ctx: TableContext;
  requestedSans: NonNullable<AssessPolicy["requestedSans"]>;
  keyAlgorithm: KeyAlgorithm;
  /** renew.onSignerChange early: the CA's current signer as renew last saw it. */
  signerChange?: AssessPolicy["signerChange"];
}

/** The configured trust that covers a CA certificate; see PinnedBy. */
export function pinnedBy(cert: CertInfo, t: CaTrust | undefined, caFile?: CertInfo[]): PinnedBy {
  if (!t || !trustConfigured(t)) return "not configured";
  return anchorOf(t, cert, caFile ?? []) ?? "none";
}

/** The CA file a CA's trust names, or why it cannot be read (for the unpinned message). */
function trustFile(t: CaTrust | undefined): { certs?: CertInfo[]; problem?: string } {
  if (!t?.caFile) return {};
  try {
    return { certs: loadPemFile(t.caFile, "CA file") };
  } catch (err) {
    return { problem: errorMessage(err) };
  }
}

/**
 * Why a CA certificate is unpinned, naming its pin (what `--ca-cert-hash` would take) and each
 * trust setting configured for the CA, as the join's pin failure does (ca/trust.ts).
 */
function unpinnedProblem(
  ca: CaDescriptor,
  cert: CertInfo,
  t: CaTrust,
  caFileProblem?: string,
): string {
  const settings = [
    ...(t.certHashes.length ? [caSetting(ca, "ca-cert-hash", "certHashes")] : []),
    ...(t.fingerprint ? [caSetting(ca, "ca-fingerprint", "fingerprint")] : []),
    ...(t.caFile ? [caSetting(ca, "ca-file", "caFile")] : []),
  ];
  const why = caFileProblem ? ` (${caFileProblem})` : "";
  return `"${subjectLine(cert)}" (pin ${certPin(cert)}) matches no ${settings.join(" or ")}${why}`;
}

/**
 * The default warning for a CA: node-join does not renew CAs, so a CA must be rotated while the
 * leaves it signs can still get a full lifetime from it. It needs attention once less time remains
 * than the longest lifetime of the certificates of this CA on the node: a certificate renewed from
 * now on would outlive its CA (or be cut short to its end, where the CA server caps a certificate
 * at its CA's NotAfter).
 */
function caLifetimeWarning(
  notAfter: Date,
  leaves: KindReading[],
  now: Date,
): { state: EntryState; problem: string } | undefined {
  let longest: { name: string; ms: number } | undefined;
  for (const r of leaves) {
    const leaf = r.installed?.chain[0];
    if (!leaf) continue;
    const ms = leaf.notAfter.getTime() - leaf.notBefore.getTime();
    if (!longest || ms > longest.ms) longest = { name: r.kind.name, ms };
  }
  if (!longest || notAfter.getTime() - now.getTime() >= longest.ms) return undefined;
  return {
    state: "expiring",
    problem: `expires at ${isoDate(notAfter)}, within the lifetime of its ${longest.name} certificate (${shortHumanDuration(longest.ms)}): rotate the CA`,
  };
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

/** Why renew, join and trust refuse the renewal unit's environment file, or undefined. */
function environmentFileStatus(l: Layout): { file: string; problem: string } | undefined {
  try {
    checkEnvironmentFile(l.environmentFile);
    return undefined;
  } catch (err) {
    if (!(err instanceof NodeJoinError)) throw err;
    return { file: l.environmentFile, problem: errorMessage(err) };
  }
}

/** The certificate state of each of the assessment's causes. */
const STATE_OF: Record<Cause, EntryState> = {
  ok: "ok",
  missing: "missing",
  "key-mismatch": "key mismatch",
  template: "mismatch",
  chain: "untrusted",
  "key-algorithm": "key algorithm",
  expired: "expired",
  due: "renewal due",
  forced: "renewal due",
};

/**
 * One certificate as status shows it: the verdict of renew's assessment (engine/assess.ts), with
 * the installed CA files as anchors (offline, like renew before it reaches the CAs), and for a kept
 * one the --warn-within warning.
 */
function certStatus(
  r: KindReading,
  l: Layout,
  p: StatusPolicy,
  recorded: { serial?: string } | undefined,
): CertStatus {
  const v = judge(r, l, p.deadline, p.assess, p.now);
  const base = {
    name: r.kind.name,
    file: r.file,
    certificateAuthority: CAS[r.kind.ca].kind,
    externallyManaged: inspect(join(l.pkiDir, CAS[r.kind.ca].keyFile)).kind === "missing",
    cause: v.cause,
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
  } catch (err) {
    verdict = { state: "unreadable", problem: `unreadable (private key: ${errorMessage(err)})` };
  }
  if (v.cause === "key-mismatch")
    verdict ??= { state: "key mismatch", problem: "key does not match certificate" };
  else if (v.cause !== "ok") verdict ??= { state: STATE_OF[v.cause], problem: v.reason! };
  return {
    ...base,
    expires: isoDate(leaf.notAfter),
    residualSeconds: Math.floor((leaf.notAfter.getTime() - p.now.getTime()) / 1000),
    renewalDeadline: isoDate(v.deadline ?? renewalDeadline(leaf, p.deadline)),
    ...(keyType ? { keyType } : {}),
    managed: recorded?.serial === leaf.serial,
    ...(verdict ?? validity(leaf.notAfter, p) ?? { state: "ok" }),
  };
}

/**
 * kubeadm's `certs check-expiration` for what is on disk, plus the renewal deadline, key type,
 * whether node-join manages it, and a state that says what needs attention (after step's
 * `certificate needs-renewal`, which exits non-zero for what should be renewed).
 * The renewal timer and the environment file of its unit are reported too; `timerWanted`: a
 * missing timer is a problem (a joined node whose config does not say timer.enabled: false).
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
  const readings = readRole(role, l);
  const certificates = readings.map((r) => certStatus(r, l, p, state.certificates[r.kind.name]));
  const certificateAuthorities = readRoleCas(role, l).flatMap(({ ca, file, certs }) => {
    const base = {
      name: ca.kind,
      file,
      externallyManaged: external(ca.name),
    };
    if (!certs)
      return [
        inspect(file).kind === "missing"
          ? { ...base, state: "missing", problem: "missing" }
          : { ...base, state: "unreadable", problem: "unreadable" },
      ] satisfies CaStatus[];
    const trust = p.trust?.[ca.name];
    const trusted = trustFile(trust);
    const leaves = readings.filter((r) => r.kind.ca === ca.name);
    return certs.map((c, i): CaStatus => {
      const by = pinnedBy(c, trust, trusted.certs);
      // Expired first, then unpinned, then the warnings: one state, the worst.
      const verdict =
        c.notAfter > p.now && by === "none" && trust
          ? { state: "unpinned" as const, problem: unpinnedProblem(ca, c, trust, trusted.problem) }
          : (validity(c.notAfter, p) ?? caLifetimeWarning(c.notAfter, leaves, p.now));
      return {
        ...base,
        name: i === 0 ? ca.kind : `${ca.kind} (${i + 1})`,
        expires: isoDate(c.notAfter),
        residualSeconds: residual(c.notAfter),
        subject: subjectLine(c),
        pin: certPin(c),
        pinnedBy: by,
        ...(verdict ?? { state: "ok" }),
      };
    });
  });
  const timer = timerStatus(detectTimerEnv(l), p.now, timerWanted);
  const renewal = p.renewal;
  const renewalPaths = renewal
    ? casFor(role).flatMap((ca): RenewalPathStatus[] => {
        const c = renewal.cas[ca.name];
        const path = renewalPathFor(c, {
          authKeyDropped: renewal.authKeyDropped,
          shown: (f) => hostPath(f, l.root),
        });
        return path === undefined ? [] : [{ ca: ca.display, type: c.type, path }];
      })
    : undefined;
  const identity = renewal
    ? identityStatus(role, renewal.cas, l, (f) => hostPath(f, l.root))
    : undefined;
  const environmentFile = environmentFileStatus(l);
  const needsAttention =
    [...certificates, ...certificateAuthorities].some((e) => e.state !== "ok") ||
    timer.problem !== undefined ||
    environmentFile !== undefined;
  return {
    ok: true,
    command: "status",
    role,
    needsAttention,
    certificates,
    certificateAuthorities,
    timer,
    ...(environmentFile ? { environmentFile } : {}),
    ...(renewalPaths ? { renewalPaths } : {}),
    ...(identity ? { identity } : {}),
  };
}
