// The one run behind join and renew (after kubeadm's renewal Manager, built once from the
// certificate list): resolve the node, read what is installed, assess every kind, reach the CAs,
// issue and verify, lay out the files and commit them as one transaction, then the follow-up
// steps. Join, renew and trust differ only in the RunPolicy engine/policy.ts names for them.
import { join } from "node:path";
import type { Settings } from "../config/settings.js";
import type { Layout } from "../store/layout.js";
import { runHooks, type HookRun } from "../ops/hooks.js";
import type { Discovered } from "../ops/discover.js";
import { timerInstall, type TimerInstallResult } from "../ops/timer.js";
import { CA_NAMES, CAS, casFor, type CaName } from "../pki/cas.js";
import type { TableContext } from "../pki/certs.js";
import { deadlinePolicy } from "../pki/deadline.js";
import { readCaFile, readRole } from "../pki/installed.js";
import type { CertInfo } from "../pki/x509.js";
import { inspect, removeIfExists } from "../store/fsio.js";
import type { Credentials } from "../store/cert-store.js";
import {
  readState,
  stateFile,
  withCaUrls,
  recordsFiles,
  withFiles,
  withIssued,
  withOffered,
  type IssuedRecord,
  type OfferedRecord,
  type SignerRecord,
  type State,
} from "../store/state.js";
import { buildChain, certPin } from "../pki/x509.js";
import type { SignerChange } from "../pki/deadline.js";
import { subjectLine, type KindReading } from "../pki/installed.js";
import {
  commit,
  isUnchanged,
  planCommit,
  type FileChange,
  type PlannedFile,
} from "../store/transaction.js";
import { assess, due, nextDeadline, type Assessment } from "./assess.js";
import { caFiles, kindFiles } from "./files.js";
import { resolveIdentity, tableContext } from "./identity.js";
import {
  answeredUrls,
  casOf,
  connectCas,
  issueAll,
  prepareAll,
  type Connected,
  type Issued,
} from "./issue.js";
import { droppableSecretFiles, requestedSansFor, withoutSecrets } from "../ca/index.js";
import { trustedBundle } from "../ca/trust.js";
import { locked } from "./locked.js";
import {
  readFloor,
  tlsClockVerdict,
  untilClockSet,
  verdictAgainst,
  type ClockWait,
} from "./clock.js";
import { revokeSuperseded, supersededBy } from "./revoke.js";
import type { Runtime } from "./runtime.js";
import { writeTpmKeys, type TpmKeyWrite } from "./tpm-keys.js";

/**
 * What one operation's run does (engine/policy.ts names one per operation); each field steers one
 * thing.
 */
export interface RunPolicy {
  force: boolean;
  /**
   * The pre-flight: everything a real run checks before it issues (settings, secrets, the CAs
   * reachable and matching their pins, step-ca's enrolment secrets), then the files it would
   * write; no CSR is sent, nothing is written, no lock is taken.
   */
  dryRun: boolean;
  /** Interface inventory for discovery: the full one, or sysfs (renew runs twice a day). */
  inventory: "systeminformation" | "sysfs";
  /**
   * Contact every CA of the role before deciding: installed chains are checked against the CA
   * certificates they serve, and those are written (join). Otherwise only the CAs of what is due
   * are contacted, and installed chains are checked against the installed CA files (renew).
   */
  contactAllCas: boolean;
  /**
   * Also when nothing is due, refresh every CA's trusted bundle of the role (a CA's new certificate
   * during a rotation, a retired one dropped), written only when it changed: "server" reaches every
   * CA (a CA of which nothing is due and that is unreachable is a warning; renew), "local"
   * recomputes the bundles from the installed files against the pins (trust --no-refresh).
   */
  refreshCas?: "server" | "local";
  /**
   * Issue what is due; false: only the CA bundles and the command's own files are written (trust
   * add, and remove without --renew).
   */
  issue: boolean;
  /** CA certificates the command adds to those the node holds (trust add --ca-file). */
  extraCas?: ReadonlyMap<CaName, CertInfo[]>;
  /**
   * The deadline rule (the kubelet's, or renew.before) makes a valid certificate due; without it
   * only expiry does.
   */
  deadlineRule: boolean;
  /**
   * How a due certificate is asked for where the CA has a renewal path (step-ca's /renew):
   * "installed" authenticates with the certificate it replaces (client-go's certificate manager
   * rotates the same way), "enrolment" signs a new CSR with the enrolment secrets.
   */
  requestWith: "installed" | "enrolment";
  /**
   * "up-front": every enrolment secret of the CAs reached is read and checked before any request
   * (and by a dry run), so a failure spends no one-time token; "if-needed": those only an
   * enrolment needs may be missing (a renewal that falls back to enrolment asks for them then).
   */
  enrolmentSecrets: "up-front" | "if-needed";
  /** renew.reuseKey may keep the installed key; otherwise every certificate gets a new key. */
  reuseKey: boolean;
  /** Record the run as the last renewal (state file, metrics). */
  recordRenewal: boolean;
  /**
   * After the commit: previous kubelet files kept beside the current one (older ones are removed).
   */
  keepPrevious?: number;
  /**
   * After a commit that issued something: these commands, with NODE_JOIN_RENEWED (or the note why
   * none run).
   */
  hooks?: { commands: string[][]; note?: string };
  /** After the commit: install the renewal timer. */
  installTimer: boolean;
  /**
   * --unsafe-skip-ca-verification may take effect: a CA without a pin, fingerprint or CA file is
   * trusted as it answers (join only; the command pins it for every later run).
   */
  trustOnFirstUse: boolean;
  /**
   * When the recovery completes an interrupted leave: "continue" (join joins the node anew) or
   * "stop" (the node is no longer joined; renewing would join it again).
   */
  afterLeave: "continue" | "stop";
  /**
   * A clock that is not set (engine/clock.ts) is waited for up to --timeout (join, whose first
   * run may come before NTP synced); otherwise the run fails at once with exit 11, judging nothing.
   */
  waitForClock?: boolean;
  /**
   * renew.authKey: drop takes effect: once the run succeeded, still under the lock, the auth key
   * files of the role's CFSSL CAs are deleted (a dry run lists them).
   */
  dropAuthKeys: boolean;
  /**
   * The command's own files for the transaction (join: its config, the sa pair, the kubelet
   * drop-in), given the node and the CA certificates this run trusted.
   */
  extraFiles?: (id: Discovered, trusted: ReadonlyMap<CaName, CertInfo[]>) => FileChange[];
}

export interface RunOutcome {
  dryRun: boolean;
  nodeName: string;
  /** Every kind of the role; those with a reason were (or would be) issued. */
  assessments: Assessment[];
  issued: Map<string, Issued>;
  changedFiles: string[];
  /** The changed (dry run: the would-be changed) files, with action and mode. */
  files: PlannedFile[];
  backup?: string;
  nextDeadline?: Date;
  hooks: HookRun[];
  timer?: TimerInstallResult;
  /** renew.authKey: drop: the CFSSL auth key files this run deleted (dry run: would delete). */
  droppedAuthKeys?: string[];
  /** identity: tpm: the auth key files whose key this run moved into the TPM (then deleted). */
  authKeysIntoTpm?: string[];
  /** identity: tpm (step-ca): the token files whose one-time tokens this run spent, deleted. */
  spentTokenFiles?: string[];
}

export async function run(s: Settings, policy: RunPolicy, rt: Runtime): Promise<RunOutcome> {
  const l = rt.layout;
  const now = () => new Date(rt.clock.now());
  const id = await resolveIdentity(s, policy.inventory);
  const ctx = tableContext(s, id);
  // Only join may trust an unpinned CA, once: every later run verifies against the pin it wrote.
  const trusting = policy.trustOnFirstUse ? s : { ...s, unsafeSkipCaVerification: false };

  const mode = {
    dryRun: policy.dryRun,
    afterLeave: policy.afterLeave === "continue",
    role: s.role,
  };
  // Nothing is judged by a clock that is not set: below the floor before any CA is asked, off
  // from a CA's Date once one answered, and again after issuing (the sign answer's Date).
  const floor = readFloor(s.role, l);
  const clockWait: ClockWait = {
    wait: policy.waitForClock === true,
    dryRun: policy.dryRun,
    timeoutMs: s.timeoutMs,
    log: rt.log,
    sleep: (ms) => rt.clock.sleep(ms),
  };
  const verdict = (cas: Connected) =>
    verdictAgainst(
      now(),
      floor,
      [...cas.values()].map((c) => c.backend),
      s.clockToleranceMs,
    );
  await untilClockSet(async () => verdict(new Map()), clockWait);
  const tpmKeys = new Map<CaName, () => TpmKeyWrite[]>();
  const decideAndWrite = async (): Promise<RunOutcome> => {
    const readings = readRole(s.role, l);
    const installedCas = new Map<CaName, CertInfo[] | undefined>(
      CA_NAMES.map((ca) => [ca, readCaFile(CAS[ca], l)]),
    );
    const known = (ca: CaName): CertInfo[] => [
      ...(installedCas.get(ca) ?? []),
      ...(policy.extraCas?.get(ca) ?? []),
    ];
    const connect = async (
      cas: CaName[],
      refreshOnly?: ReadonlySet<CaName>,
    ): Promise<Connected> => {
      let reached: Connected = new Map();
      // What this connection put in the TPM (identity: tpm), written at the end.
      const collect = (c: Connected) =>
        c.forEach(({ tpmKeys: writes }, ca) => writes && tpmKeys.set(ca, writes));
      // Each look at the clock connects anew (the CAs' bundles: nothing is sent), with a deadline
      // from the clock as it reads then: a clock set during the wait jumps. This wait (for a
      // clock off from a CA's Date, known only once a CA answered) holds the lock, bounded by
      // --timeout: status takes no lock and answers meanwhile; a renew or leave then is exit 7,
      // which the timer retries (the wait below the floor comes before the lock).
      await untilClockSet(async () => {
        try {
          reached = await connectCas(trusting, cas, rt, {
            deadline: rt.clock.now() + s.timeoutMs,
            renewal: policy.enrolmentSecrets === "if-needed",
            nodeName: id.nodeName,
            // Each CA's server that answered last time is asked first (ca/common.ts CaServers).
            preferred: readState(l).caUrls ?? {},
            known,
            ...(refreshOnly ? { refreshOnly } : {}),
          });
        } catch (err) {
          // The CA's TLS certificate not valid by a clock that is off from the CA's.
          const v = tlsClockVerdict(err, now(), floor, s.clockToleranceMs);
          if (!v) throw err;
          return v;
        }
        return verdict(reached);
      }, clockWait);
      collect(reached);
      return reached;
    };
    let connected = policy.contactAllCas
      ? await connect(casFor(s.role).map((c) => c.name))
      : undefined;
    let signers = new Map<CaName, SignerSeen>();
    const assessWith = (anchors: (ca: CaName) => CertInfo[] | undefined): Assessment[] =>
      assess(readings, ctx, {
        signerChange: (ca) => signers.get(ca),
        force: policy.force,
        ...(policy.deadlineRule ? { deadline: deadlinePolicy(id.nodeName, s.renew) } : {}),
        anchors,
        requestedSans: (ca, t) => requestedSansFor(s.cas[ca].type, t),
        keyAlgorithm: s.keyAlgorithm,
        now: now(),
      });
    let assessments = assessWith((ca) =>
      policy.contactAllCas ? connected?.get(ca)?.anchors : installedCas.get(ca),
    );
    if (!connected && policy.refreshCas === "server") {
      // The CAs of what is due are reached as for issuing (secrets read, a failure fails the
      // run); the others only for their bundle.
      const dueCas = casOf(due(assessments).map((a) => a.kind));
      const all = casFor(s.role).map((c) => c.name);
      const bundles = await connect(all, new Set(all.filter((ca) => !dueCas.includes(ca))));
      // Against the refreshed bundles: a leaf that chains only to a CA whose pin was removed is
      // due now, and is renewed by the current signer while the bundle drops its CA; one signed
      // by a retiring signer may be due early (renew.onSignerChange).
      signers = signerChanges(s, bundles, readings, readState(l), now());
      assessments = assessWith((ca) => bundles.get(ca)?.anchors ?? installedCas.get(ca));
      const late = casOf(due(assessments).map((a) => a.kind)).filter((c) => !dueCas.includes(c));
      if (late.length > 0 && policy.issue)
        for (const [ca, c] of await connect(late)) bundles.set(ca, c);
      connected = bundles;
    }
    const toIssue = policy.issue ? due(assessments) : [];
    const base: RunOutcome = {
      dryRun: policy.dryRun,
      nodeName: id.nodeName,
      assessments,
      issued: new Map(),
      changedFiles: [],
      files: [],
      hooks: [],
    };
    const next = nextDeadline(assessments);
    if (next) base.nextDeadline = next;
    if (toIssue.length === 0 && !connected && !policy.refreshCas) return base;

    connected ??= toIssue.length ? await connect(casOf(toIssue.map((a) => a.kind))) : new Map();
    const bundles = bundlesOf(s, connected, policy.refreshCas !== undefined, known);
    const reached = reachedCas(connected);
    const changes = (fresh: NewCredentials): FileChange[] =>
      filesOf(s, ctx, assessments, fresh, bundles, installedCas, id, policy, rt, signers, reached);
    const upFront = policy.enrolmentSecrets === "up-front";
    if (policy.dryRun) {
      if (upFront) await prepareAll(toIssue, connected);
      const files = planCommit(changes(standIns(toIssue, now())));
      return { ...base, changedFiles: files.map((f) => f.path), files };
    }
    const renewWithInstalled = policy.requestWith === "installed";
    // issueAll checks the enrolment secrets itself unless it renews with the installed credentials.
    if (upFront && renewWithInstalled) await prepareAll(toIssue, connected);
    const issued = await issueAll(
      toIssue,
      connected,
      {
        algorithm: s.keyAlgorithm,
        reuseKey: policy.reuseKey && s.renew.reuseKey,
        renewWithInstalled,
      },
      rt,
    );
    // The answers' Dates too: a clock found off now installs nothing.
    await untilClockSet(async () => verdict(connected), { ...clockWait, wait: false });
    const superseded = supersededBy(readings, issued, readState(l), rt.clock.now());
    const committed = commit(changes(issuedCredentials(issued)), l, now(), rt.crashPoint);
    // Once the new certificates are in place (a failed commit keeps the old ones, unrevoked):
    // those they replaced, and those earlier runs could not revoke (revoke.ts).
    if (policy.issue) await revokeSuperseded(superseded, connected, rt);
    const keep = policy.keepPrevious;
    if (keep !== undefined)
      for (const a of toIssue)
        for (const old of a.kind.store.leftovers(l, keep)) removeIfExists(old);
    const outcome: RunOutcome = {
      ...base,
      issued,
      changedFiles: committed.changed,
      files: committed.files,
      ...(committed.backup ? { backup: committed.backup } : {}),
    };
    return { ...outcome, ...followUps(s, policy, rt, id.nodeName, [...issued.keys()], committed) };
  };
  // The auth keys go under the lock, after the commit and the follow-up steps: a second run finds
  // this one's lock, or its files in place and the keys gone; never one without the other.
  return locked(rt, mode, async () => dropAuthKeys(s, policy, await decideAndWrite(), tpmKeys));
}

/**
 * The steps after a commit, still under the lock: a second run must not restart what this one is
 * restarting.
 */
function followUps(
  s: Settings,
  policy: RunPolicy,
  rt: Runtime,
  nodeName: string,
  issued: string[],
  committed: { changed: string[] },
): Pick<RunOutcome, "hooks" | "timer"> {
  const l = rt.layout;
  const out: Pick<RunOutcome, "hooks" | "timer"> = { hooks: [] };
  // A changed CA bundle counts like a renewed certificate: the kubelet reads its kubeconfig's
  // certificate-authority-data only when it starts.
  const renewed = [...issued, ...changedCas(s, committed.changed, l)];
  if (policy.hooks && renewed.length > 0) {
    if (policy.hooks.note) rt.log(policy.hooks.note);
    out.hooks = runHooks(policy.hooks.commands, renewed, withoutSecrets(rt.env), l.root, rt.log);
  }
  if (policy.installTimer) {
    // The unit may write the metrics textfile's directory, so it is rendered with the setting.
    const timer = { layout: l, seed: nodeName, metricsTextfile: s.metrics.textfile };
    out.timer = timerInstall(timer);
  }
  return out;
}

/**
 * renew.authKey: drop, when the policy carries it out: the auth key files of the role's CFSSL CAs
 * that are on disk, each once (the CAs usually share one), deleted once the run succeeded (a dry
 * run only names them). After the commit, not in it: a crash in between leaves the node joined
 * with its key (renewals keep working as with keep), and the next join, which finds nothing to
 * do, drops it.
 */
function dropAuthKeys(
  s: Settings,
  policy: RunPolicy,
  outcome: RunOutcome,
  pending: ReadonlyMap<CaName, () => TpmKeyWrite[]>,
): RunOutcome {
  const tpmKeys = [...pending.values()].flatMap((w) => w());
  const spentOf = (r: { spentTokens: string[] }): RunOutcome =>
    r.spentTokens.length ? { ...outcome, spentTokenFiles: r.spentTokens } : outcome;
  if (!policy.dropAuthKeys) {
    // renew: an X5C machine certificate it renewed (or obtained again) in the TPM's name.
    if (policy.dryRun) return outcome;
    return spentOf(
      writeTpmKeys(
        tpmKeys.filter((w) => w.everyRun),
        removeIfExists,
      ),
    );
  }
  // identity: tpm: the keys the TPM took, their blobs written, then their files deleted.
  const written = policy.dryRun
    ? { replaced: tpmKeys.flatMap((w) => (w.replaces ? [w.replaces] : [])), spentTokens: [] }
    : writeTpmKeys(tpmKeys, removeIfExists);
  const intoTpm = written.replaced;
  const base = spentOf(written);
  const withTpm = intoTpm.length ? { ...base, authKeysIntoTpm: [...new Set(intoTpm)] } : base;
  if (s.renew.authKey !== "drop") return withTpm;
  // The backends say which of their secret files the drop deletes (ca/index.ts).
  const files = casFor(s.role).flatMap(({ name }) => droppableSecretFiles(s.cas[name]));
  const dropped = [...new Set(files)].filter((f) => inspect(f).kind !== "missing");
  if (!policy.dryRun) for (const f of dropped) removeIfExists(f);
  return { ...withTpm, droppedAuthKeys: dropped.filter((f) => !intoTpm.includes(f)) };
}

/** A CA's current signer, first seen by this node at change.seenAt (renew.onSignerChange). */
interface SignerSeen {
  signer: CertInfo;
  change: SignerChange;
  record: SignerRecord;
}

/**
 * renew.onSignerChange early: per CA whose bundle holds more than one certificate during a
 * rotation's overlap, and whose current signer (the backend's answer: CFSSL's certificate,
 * step-ca's intermediate) signed none of a certificate on the node, the signer and when this node
 * first saw it (the state file's record, else now).
 */
function signerChanges(
  s: Settings,
  connected: Connected,
  readings: KindReading[],
  state: State,
  now: Date,
): Map<CaName, SignerSeen> {
  const out = new Map<CaName, SignerSeen>();
  if (s.renew.onSignerChange !== "early") return out;
  for (const [ca, c] of connected) {
    const signer = c.signer;
    if (!signer || c.anchors.length < 2) continue;
    const retiring = readings.some((r) => {
      if (r.kind.ca !== ca || !r.installed) return false;
      const [leaf, ...rest] = r.installed.chain as [CertInfo, ...CertInfo[]];
      return !buildChain(leaf, rest, [signer]);
    });
    if (!retiring) continue;
    const pin = certPin(signer);
    const known = state.signers?.[ca];
    const at = known?.pin === pin ? new Date(known.seenAt) : now;
    const seenAt = Number.isNaN(at.getTime()) ? now : at;
    out.set(ca, {
      signer,
      change: { seenAt, windowMs: s.renew.signerChangeWindowMs, signer: signer.commonName },
      record: { pin, seenAt: seenAt.toISOString() },
    });
  }
  return out;
}

/**
 * The state file, when this run issued something, first saw a CA's new signer, or writes a file
 * whose digest the state does not hold yet (`files`: the rest of the transaction, recorded for
 * `leave`).
 */
function stateChange(
  records: IssuedRecord[],
  signers: ReadonlyMap<CaName, SignerSeen>,
  reached: Reached,
  now: Date,
  recordRenewal: boolean,
  l: Layout,
  files: readonly FileChange[],
): FileChange[] {
  const state = readState(l);
  const seen = [...signers].filter(([ca, x]) => state.signers?.[ca]?.pin !== x.record.pin);
  // The server that answered is remembered (ca/common.ts CaServers) when it is another than last
  // time: every renew reaches the CAs to refresh their bundles.
  const moved = [...reached.answered].some(([ca, url]) => state.caUrls?.[ca] !== url);
  const offered = withOffered(state, reached.offered);
  // Only what this commit writes: a file a join kept as it found it (kubeadm's, the operator's) is
  // not node-join's to remove.
  const written = files.filter((f) => !isUnchanged(f));
  const recorded = recordsFiles(state, written, l);
  if (records.length === 0 && seen.length === 0 && !moved && !offered && recorded) return [];
  const next = withCaUrls(
    withIssued(withFiles(offered ?? state, written, l), records, now, recordRenewal),
    reached.answered,
  );
  if (seen.length)
    next.signers = {
      ...next.signers,
      ...Object.fromEntries(seen.map(([ca, x]) => [ca, x.record])),
    };
  return [stateFile(next, l)];
}

/** What the state file keeps of the CAs this run reached. */
interface Reached {
  /** The URL of the server that answered (CaServers). */
  answered: ReadonlyMap<CaName, string>;
  /** What each offered beyond its anchors (CaBackend.offered). */
  offered: ReadonlyMap<CaName, OfferedRecord[]>;
}

function reachedCas(connected: Connected): Reached {
  const offered = new Map<CaName, OfferedRecord[]>();
  for (const [ca, c] of connected)
    offered.set(
      ca,
      c.offered.map((o) => ({
        pin: certPin(o),
        subject: subjectLine(o),
        notAfter: o.notAfter.toISOString(),
      })),
    );
  return { answered: answeredUrls(connected), offered };
}

/**
 * The bundle of every CA this run reached; when refreshing, a CA not reached (unreachable, or no
 * network: trust --no-refresh) gets the certificates the node holds that a pin still names, never
 * an empty bundle.
 */
function bundlesOf(
  s: Settings,
  connected: Connected,
  refresh: boolean,
  known: (ca: CaName) => CertInfo[],
): Map<CaName, CertInfo[]> {
  const out = new Map<CaName, CertInfo[]>();
  for (const { name } of casFor(s.role)) {
    const reached = connected.get(name)?.anchors;
    const b = reached ?? (refresh ? trustedBundle(s.cas[name], [], known(name)) : undefined);
    if (b && b.length > 0) out.set(name, b);
  }
  return out;
}

/** The CA certificate files among `changed`, by kubeadm's name of each ("ca", "etcd-ca"). */
function changedCas(s: Settings, changed: string[], l: Layout): string[] {
  return casFor(s.role)
    .filter((ca) => changed.includes(join(l.pkiDir, ca.file)))
    .map((ca) => ca.kind);
}

/** What this run issued (or a dry run would): the credentials per kind, and the state records. */
interface NewCredentials {
  credentials: ReadonlyMap<string, Credentials>;
  records: IssuedRecord[];
}

function issuedCredentials(issued: Map<string, Issued>): NewCredentials {
  const all = [...issued.values()];
  return {
    credentials: new Map(all.map((i) => [i.kind, i.credentials])),
    records: all.map((i) => ({
      kind: i.kind,
      ca: i.ca,
      serial: i.leaf.serial,
      notAfter: i.leaf.notAfter,
      // The chain as installed (leaf, then intermediates): a revocation over mTLS presents it.
      certPem: i.credentials.chainPem,
    })),
  };
}

/** A dry run's stand-ins for what the CAs would sign: unlike anything installed, so every file of a
 * kind due is planned as a real run would write it (a new kubelet file, a replaced pair). */
const TO_BE_ISSUED: Credentials = { chainPem: "(to be issued)\n", keyPem: "(to be generated)\n" };

function standIns(toIssue: Assessment[], at: Date): NewCredentials {
  return {
    credentials: new Map(toIssue.map((a) => [a.kind.name, TO_BE_ISSUED])),
    records: toIssue.map((a) => ({
      kind: a.kind.name,
      ca: a.kind.ca,
      serial: "",
      notAfter: at,
      certPem: "",
    })),
  };
}

function filesOf(
  s: Settings,
  ctx: TableContext,
  assessments: Assessment[],
  issued: NewCredentials,
  bundles: ReadonlyMap<CaName, CertInfo[]>,
  installedCas: Map<CaName, CertInfo[] | undefined>,
  id: Discovered,
  policy: RunPolicy,
  rt: Runtime,
  signers: ReadonlyMap<CaName, SignerSeen>,
  reached: Reached,
): FileChange[] {
  const now = new Date(rt.clock.now());
  const fetched = new Map(bundles);
  const caPem = new Map<CaName, string>();
  for (const ca of CA_NAMES) {
    const anchors = fetched.get(ca) ?? installedCas.get(ca);
    if (anchors) caPem.set(ca, anchors.map((c) => c.pem).join(""));
  }
  const records = issued.records;
  const files = [
    // Only the CAs asked this run: their certificate may have been re-issued (same key, new
    // validity).
    ...caFiles(s.role, fetched, rt.layout),
    ...kindFiles(assessments, issued.credentials, caPem, ctx, rt.layout, now),
    ...(policy.extraFiles?.(id, fetched) ?? []),
  ];
  const l = rt.layout;
  return [...files, ...stateChange(records, signers, reached, now, policy.recordRenewal, l, files)];
}
