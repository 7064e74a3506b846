// `leave`, the counterpart of join (in the spirit of kubeadm reset, limited to what node-join
// installed): every file node-join wrote and that is still as it wrote it goes, as one
// transaction (store/transaction.ts commitRemoval), after the certificates were revoked where
// asked, the control plane's static pods stopped and the kubelet stopped. Anything else is kept
// and listed.
import { lstatSync } from "node:fs";
import { join, relative } from "node:path";
import type { RevokeReason } from "../ca/backend.js";
import { secretFiles, withoutSecrets } from "../ca/index.js";
import { authKeyInTpm, tpmAuthKeyFile } from "./tpm-keys.js";
import { tpmX5cFiles, x5cInTpm } from "./tpm-x5c.js";
import { NodeJoinError, NotRevokedError, errorMessage } from "../common/errors.js";
import type { Settings } from "../config/settings.js";
import { childProcess } from "../common/builtins.js";
import { runHooks } from "../ops/hooks.js";
import { parkManifests, manifestsOf, restorePausedManifests } from "../ops/static-pods.js";
import { TEXTFILE_MAX_BYTES } from "../ops/metrics.js";
import { detectTimerEnv, timerFiles, TIMER } from "../ops/timer.js";
import { CA_NAMES, CAS, casFor, type CaName } from "../pki/cas.js";
import { CERT_KINDS, STATIC_PODS, type CertKind } from "../pki/certs.js";
import { readCaFile, readInstalled, type KindReading } from "../pki/installed.js";
import type { Role } from "../pki/roles.js";
import { inspect, present, removeCreatedDirs, removeIfExists } from "../store/fsio.js";
import { kubeletServingDropin } from "../store/kubelet-store.js";
import type { Layout } from "../store/layout.js";
import { readUntrusted } from "../store/safe-read.js";
import { fileDigest, readState, type State } from "../store/state.js";
import { backupExisting, commitRemoval } from "../store/transaction.js";
import { verdictOf } from "./assess.js";
import { connectCas } from "./issue.js";
import { locked } from "./locked.js";
import { dropKeptKeys, keptKey, knownCa, revokeSubject, serialDecimal } from "./revoke.js";
import type { Runtime } from "./runtime.js";
import { notWrittenFor, writtenFor } from "./written.js";

export { revokeSubject, serialDecimal } from "./revoke.js";

/** RFC 5280 5.3.1: the node is retired, its keys were not compromised. */
export const LEAVE_REASON: RevokeReason = "cessationOfOperation";

/** How long the kubelet gets to stop the pods of the manifests gone (fileCheckFrequency 20s). */
export const MANIFEST_WAIT_MS = 25_000;

export interface LeaveOptions {
  settings: Settings;
  /** The config file was found (the CA settings --revoke needs). */
  configured: boolean;
  dryRun: boolean;
  revoke: boolean;
  force: boolean;
  keepBackup: boolean;
  /** --keep-secrets: the secret files the CA settings name stay (listed as kept). */
  keepSecrets?: boolean;
  /**
   * Asked with the plan before anything changes (the CLI's prompt, or --yes); false stops the leave
   * with nothing changed.
   */
  confirm: (plan: LeavePlan) => Promise<boolean>;
}

/** A file leave removes, and what it is. */
export interface Removal {
  path: string;
  what: string;
  /** A secret file the CA settings name (an auth key, token, password or X5C key). */
  secret?: true;
}

/** A file leave keeps, and why. */
export interface Kept {
  path: string;
  reason: string;
}

/** A certificate node-join issued here and that is still valid (leave --revoke). */
export interface ToRevoke {
  kind: string;
  ca: CaName;
  /** Lower-case hex, as the state file and status print it. */
  serial: string;
  /** The same serial in decimal, as CFSSL's certificate database and step-ca's logs show it. */
  serialDecimal: string;
  notAfter: string;
  certPem: string;
  /** Absent: its key is no longer on the node (a superseded certificate). */
  keyPem?: string;
}

export interface LeavePlan {
  role: Role;
  remove: Removal[];
  keep: Kept[];
  /** The static pod manifests (file names) moved to leftManifestsDir first (control plane). */
  manifests: string[];
  /** Run before anything is removed: the kubelet stopped (hooks.preLeave). */
  stop: { commands: string[][]; note?: string };
  /** With --revoke: what is revoked first. */
  revoke: ToRevoke[];
  /** The backup directory of earlier runs' replaced files exists (removed unless --keep-backup). */
  backups: boolean;
}

export interface RevokeOutcome {
  kind: string;
  ca: CaName;
  serial: string;
  serialDecimal: string;
  revoked: boolean;
  /** Why it was not revoked. */
  error?: string;
}

export interface LeaveOutcome {
  dryRun: boolean;
  plan: LeavePlan;
  revocations: RevokeOutcome[];
  /** The final copy (--keep-backup). */
  backup?: string;
}

const METRICS = "metrics textfile";

/** A file the state file records that node-join does not write for the role. */
const FOREIGN = "recorded file";

interface Candidate {
  path: string;
  what: string;
  /** Set for a kind's own files: without a recorded digest, its serial decides (ownedBySerial). */
  reading?: KindReading;
}

/**
 * Every file node-join writes for the role on this root (written.ts), in the order leave removes
 * them; then what the state file records beyond them, only to be listed as kept: the state file
 * does not choose what is removed.
 */
function candidates(
  role: Role,
  l: Layout,
  state: State,
  metricsFile: string | undefined,
): Candidate[] {
  const more = metricsFile ? [{ path: metricsFile, what: METRICS }] : [];
  const out: Candidate[] = writtenFor(role, l, more).map((w) =>
    w.kind ? { ...w, reading: readInstalled(w.kind, l) } : w,
  );
  const known = new Set(out.map((c) => c.path));
  for (const rel of Object.keys(state.files ?? {})) {
    const path = join(l.root, rel);
    if (!known.has(path)) out.push({ path, what: FOREIGN });
  }
  return out;
}

/**
 * Without a recorded digest (a node joined by a node-join that recorded none): a kind's file is
 * node-join's when the installed certificate is the one the state file says node-join issued, and
 * the file is the kind's current one (not an older kubelet file, which nothing identifies).
 */
function ownedBySerial(c: Candidate, state: State): boolean {
  const r = c.reading;
  const leaf = r?.installed?.chain[0];
  if (!r || !leaf || state.certificates[r.kind.name]?.serial !== leaf.serial) return false;
  const link = inspect(r.file);
  const current = link.kind === "symlink" ? join(r.file, "..", link.target!) : r.file;
  return !/-\d{4}(-\d{2}){5}\.pem$/.test(c.path) || c.path === current;
}

const CHANGED = "changed since node-join wrote it";
const UNKNOWN = "not written by node-join (no record of it in its state file)";

/** Whether leave removes the candidate, or why it keeps it; undefined: nothing there. */
function decide(c: Candidate, l: Layout, state: State, role: Role): true | string | undefined {
  if (c.what === METRICS) return metricsDecision(c.path);
  if (c.what === FOREIGN) return present(c.path) ? notWrittenFor(role) : undefined;
  const now = inspect(c.path);
  if (now.kind === "missing") return undefined;
  if (now.kind === "other") return "not a file or link";
  if (c.path === l.stateFile) return true;
  if (timerFiles(l).includes(c.path)) return true; // node-join's by name, as `timer remove` says
  const recorded = state.files?.[relative(l.root, c.path)];
  if (recorded !== undefined) return fileDigest(now) === recorded || CHANGED;
  if (ownedBySerial(c, state)) return true;
  const dropin = kubeletServingDropin(l);
  if (
    c.path === dropin.path &&
    "content" in dropin &&
    now.content?.equals(Buffer.from(dropin.content))
  )
    return true;
  return UNKNOWN;
}

/**
 * The metrics textfile is node-join's when it is a regular file of node-join's metrics; it lies in
 * node_exporter's directory, which others may write: read as metrics.ts reads it (no link
 * followed, no FIFO opened, at most TEXTFILE_MAX_BYTES).
 */
function metricsDecision(path: string): true | string | undefined {
  const r = readUntrusted(path, { maxBytes: TEXTFILE_MAX_BYTES });
  if (r.kind === "missing") return undefined;
  if (r.kind !== "file") return UNKNOWN;
  return /^# HELP node_join_/m.test(r.content.toString("utf8")) || UNKNOWN;
}

/**
 * The commands that stop the kubelet: hooks.preLeave as configured; by default on the host itself
 * `systemctl stop kubelet` when the kubelet is active, and under --root none (the root's kubelet
 * is not this host's).
 */
function stopCommands(s: Settings, l: Layout): LeavePlan["stop"] {
  if (s.hooks.preLeave) return { commands: s.hooks.preLeave };
  if (l.root !== "/")
    return {
      commands: [],
      note: "not stopping the kubelet under --root (set hooks.preLeave to run commands first)",
    };
  const active = childProcess().spawnSync("systemctl", ["is-active", "--quiet", "kubelet"]);
  return { commands: active.status === 0 ? [["systemctl", "stop", "kubelet"]] : [] };
}

/**
 * The certificates node-join issued here that are still valid (those --revoke revokes): the
 * installed ones, then every other one the state recorded (superseded by a renewal and not yet
 * revoked: a copy of the node's files could still renew with it).
 */
function stillValid(l: Layout, state: State, now: number): ToRevoke[] {
  const installed = installedValid(l, state, now);
  for (const r of (state.issued ?? []).filter(knownCa)) {
    if (r.revokedAt || Date.parse(r.notAfter) <= now) continue;
    if (installed.some((i) => i.serial === r.serial && i.ca === r.ca)) continue;
    const keyPem = keptKey(l, r);
    installed.push({
      ...{ kind: r.kind, ca: r.ca, serial: r.serial, serialDecimal: serialDecimal(r.serial) },
      ...{ notAfter: r.notAfter, certPem: r.certPem, ...(keyPem ? { keyPem } : {}) },
    });
  }
  return installed;
}

/**
 * The installed certificates node-join issued that are still valid: assess's verdict (whatever
 * else is wrong with one, only an expired one is no longer the CA's to revoke).
 */
function installedValid(l: Layout, state: State, now: number): ToRevoke[] {
  const out: ToRevoke[] = [];
  const judge = { force: false, anchors: () => undefined, now: new Date(now) };
  for (const kind of CERT_KINDS) {
    const reading = readInstalled(kind, l);
    const installed = reading.installed;
    const leaf = installed?.chain[0];
    if (!installed || !leaf) continue;
    if (state.certificates[kind.name]?.serial !== leaf.serial) continue;
    if (verdictOf(reading, undefined, judge).expired) continue;
    out.push({
      kind: kind.name,
      ca: kind.ca,
      serial: leaf.serial,
      serialDecimal: serialDecimal(leaf.serial),
      notAfter: leaf.notAfter.toISOString(),
      certPem: installed.chain.map((c) => c.pem).join(""),
      keyPem: installed.keyPem,
    });
  }
  return out;
}

/** Whether a file lies under the root (always, for /). */
function insideRoot(path: string, l: Layout): boolean {
  return l.root === "/" || !relative(l.root, path).startsWith("..");
}

/** The metrics textfile leave may remove: the configured one, where it lies under the root. */
function metricsFileOf(s: Settings, l: Layout): string | undefined {
  return insideRoot(s.metrics.textfile, l) ? s.metrics.textfile : undefined;
}

/**
 * The node's role: the config's; without one, what the state file says node-join issued (a
 * control-plane kind makes it a control plane). Never widened by the state when the config says.
 */
function roleOf(o: LeaveOptions, state: State): Role {
  if (o.configured) return o.settings.role;
  const cpOnly = (k: CertKind) => !k.roles.includes("worker");
  return o.settings.role === "control-plane" ||
    CERT_KINDS.some((k) => cpOnly(k) && state.certificates[k.name] !== undefined)
    ? "control-plane"
    : "worker";
}

/** What leave would do on this root now; reads only. */
export function planLeave(o: LeaveOptions, rt: Runtime): LeavePlan {
  const l = rt.layout;
  const s = o.settings;
  const state = readState(l);
  const role = roleOf(o, state);
  const remove: Removal[] = [];
  const keep: Kept[] = [];
  for (const c of candidates(role, l, state, metricsFileOf(s, l))) {
    const d = decide(c, l, state, role);
    if (d === true) remove.push({ path: c.path, what: c.what });
    else if (d !== undefined) keep.push({ path: c.path, reason: d });
  }
  const joined = remove.length > 0;
  // The secrets go with the node (a fleet-wide CFSSL auth key left on a decommissioned disk opens
  // the CA to whoever reads it), listed in the dry run; only when there is a node to leave.
  if (joined) planSecrets({ s, l, role, keepSecrets: Boolean(o.keepSecrets) }, remove, keep);
  const cp = role === "control-plane";
  return {
    role,
    remove,
    keep,
    manifests: joined && cp ? manifestsOf(STATIC_PODS, l) : [],
    stop: joined ? stopCommands(s, l) : { commands: [] },
    revoke: o.revoke && joined ? stillValid(l, state, rt.clock.now()) : [],
    backups: inspect(l.backupDir).kind !== "missing",
  };
}

/** Revokes every certificate of the plan at its CA; what happened to each. */
async function revokeAll(o: LeaveOptions, plan: LeavePlan, rt: Runtime): Promise<RevokeOutcome[]> {
  const s = o.settings;
  const out: RevokeOutcome[] = [];
  const state = readState(rt.layout);
  for (const ca of CA_NAMES) {
    const certs = plan.revoke.filter((r) => r.ca === ca);
    if (certs.length === 0) continue;
    const result = (r: ToRevoke, error?: string): RevokeOutcome => ({
      kind: r.kind,
      ca,
      serial: r.serial,
      serialDecimal: r.serialDecimal,
      revoked: error === undefined,
      ...(error === undefined ? {} : { error }),
    });
    let backend;
    try {
      if (!o.configured)
        throw new NodeJoinError(
          `no config at ${rt.layout.configFile}: the CA's settings that join persisted are gone`,
        );
      // The CA is reached and authenticated (its pin) as for a renewal, without reading any
      // secret: a CFSSL auth key may have been dropped after the join (renew.authKey: drop).
      const connected = await connectCas(s, [ca], rt, {
        deadline: rt.clock.now() + s.timeoutMs,
        renewal: true,
        withoutSecrets: true,
        preferred: state.caUrls ?? {},
        known: (c) => readCaFile(CAS[c], rt.layout),
      });
      backend = connected.get(ca)!.backend;
    } catch (err) {
      out.push(...certs.map((r) => result(r, errorMessage(err))));
      continue;
    }
    const revoke = backend.revoke?.bind(backend);
    for (const r of certs) {
      if (!revoke) {
        out.push(result(r, `${backend.description} has no revocation path`));
        continue;
      }
      try {
        const key = r.keyPem !== undefined ? { keyPem: r.keyPem } : {};
        await revoke({ kind: r.kind, certPem: r.certPem, ...key, reason: LEAVE_REASON });
        out.push(result(r));
      } catch (err) {
        out.push(result(r, errorMessage(err)));
      }
    }
  }
  return out;
}

/**
 * The secret files the role's CA settings name, each once, with what names it, and the TPM-wrapped
 * auth keys join wrote (identity: tpm): useless off this TPM, but the node's identity on it.
 */
function secretsOf(s: Settings, role: Role, l: Layout): Removal[] {
  const out = new Map<string, Removal>();
  for (const ca of casFor(role)) {
    for (const f of secretFiles(s.cas[ca.name]))
      if (!out.has(f.file))
        out.set(f.file, { path: f.file, what: `${ca.display} ${f.kind.what}`, secret: true });
    const blob = tpmAuthKeyFile(l, ca.name);
    if (authKeyInTpm(s.cas[ca.name]))
      out.set(blob, { path: blob, what: `${ca.display} CA auth key in the TPM`, secret: true });
    const x5c = tpmX5cFiles(l, ca.name);
    // The machine certificate goes (or stays, --keep-secrets) with the key it certifies.
    if (x5cInTpm(s.cas[ca.name]))
      for (const [path, what] of [
        [x5c.key, "X5C machine key in the TPM"],
        [x5c.cert, "X5C machine certificate"],
      ] as const)
        out.set(path, { path, what: `${ca.display} ${what}`, secret: true });
  }
  return [...out.values()];
}

export const KEEP_SECRETS = "--keep-secrets";

/**
 * Whether leave removes a secret file, or why it keeps it; undefined: nothing there. It may lie
 * anywhere the operator put it, outside node-join's directories: only a regular file (no link
 * followed) owned by root (the user running it) is removed, as a secret node-join reads must be
 * (strict-modes.ts), and
 * under --root only inside the root.
 */
function secretDecision(path: string, l: Layout, keepSecrets: boolean): true | string | undefined {
  const st = ownerOf(path);
  if (st === undefined) return undefined;
  // Under --root the root is the node: a file outside it (the CA's own copy) is not the node's.
  if (!insideRoot(path, l)) return "a secret outside --root: left for the operator";
  if (st === "other") return "a secret, but not a regular file: left for the operator";
  // The user running leave: root on a node; a developer's own files under a test --root.
  const me = process.geteuid?.() ?? 0;
  if (st !== me)
    return `a secret, but owned by uid ${st}, not ${me === 0 ? "root" : `uid ${me}`}: left for the operator`;
  return keepSecrets ? `a secret, kept by ${KEEP_SECRETS}` : true;
}

/** The owner of a regular file, "other" for anything else, undefined when nothing is there. */
function ownerOf(path: string): number | "other" | undefined {
  const now = inspect(path);
  if (now.kind === "missing") return undefined;
  if (now.kind !== "file") return "other";
  return lstatSync(path).uid;
}

function planSecrets(
  o: { s: Settings; l: Layout; role: Role; keepSecrets: boolean },
  remove: Removal[],
  keep: Kept[],
): void {
  for (const secret of secretsOf(o.s, o.role, o.l)) {
    const d = secretDecision(secret.path, o.l, o.keepSecrets);
    if (d === true) remove.push(secret);
    else if (d !== undefined) keep.push({ path: secret.path, reason: `${secret.what}: ${d}` });
  }
}

/**
 * What the transaction removes: all but the metrics textfile, which lies outside node-join's
 * directories (recovery follows no journal there) and goes just before the commit: every run
 * writes it anew, so a leave interrupted before its commit loses nothing.
 */
function journalled(plan: LeavePlan): string[] {
  return plan.remove.filter((r) => r.what !== METRICS && !r.secret).map((r) => r.path);
}

/**
 * Leaves: plans (no lock), asks, then under the lock (after recovery) plans again, revokes, stops
 * the static pods and the kubelet, and removes everything in one transaction.
 */
export async function leave(o: LeaveOptions, rt: Runtime): Promise<LeaveOutcome> {
  const l = rt.layout;
  const first = planLeave(o, rt);
  const nothing = { dryRun: o.dryRun, plan: first, revocations: [] };
  // With nothing to remove, a state directory still there holds what a killed run left (its
  // journal, its lock): the run below recovers it and removes the directory.
  if (o.dryRun || (first.remove.length === 0 && inspect(l.stateDir).kind === "missing"))
    return nothing;
  const ask = async (plan: LeavePlan): Promise<void> => {
    if (!(await o.confirm(plan)))
      throw new NodeJoinError("leave cancelled at the prompt: nothing was changed");
  };
  if (first.remove.length > 0) await ask(first);
  const outcome = await locked(
    rt,
    { dryRun: false, afterLeave: true, role: first.role },
    async (): Promise<LeaveOutcome> => {
      // Recovery may have finished an interrupted run: what goes is decided again under the lock.
      const plan = planLeave(o, rt);
      const base: LeaveOutcome = { dryRun: false, plan, revocations: [] };
      if (plan.remove.length === 0) return base;
      if (first.remove.length === 0) await ask(plan); // a join the recovery completed
      const revocations = await revokeAll(o, plan, rt);
      const failed = revocations.filter((r) => !r.revoked);
      if (failed.length > 0 && !o.force)
        throw new NotRevokedError(
          `could not revoke ${failed.length} certificate(s), nothing was removed: ` +
            `${failed.map((r) => `${revokeSubject(r)}: ${r.error!}`).join("; ")}; ` +
            `revoke them at the CA, or pass --force to leave without`,
        );
      for (const r of failed)
        rt.log(`warning: not revoked (--force): ${revokeSubject(r)}: ${r.error!}`);
      // The static pods stop before their certificates go: the kubelet stops a pod whose manifest
      // left its staticPodPath; stopping the kubelet alone leaves the containers running.
      const parked = parkManifests(
        plan.manifests.map((f) => f.replace(/\.yaml$/, "")),
        l,
      );
      if (parked.length > 0 && l.root === "/") {
        rt.log(
          `moved ${parked.join(", ")} away; waiting ${MANIFEST_WAIT_MS / 1000}s for the kubelet to stop them`,
        );
        await rt.clock.sleep(MANIFEST_WAIT_MS);
      }
      if (plan.stop.note) rt.log(plan.stop.note);
      try {
        runHooks(
          plan.stop.commands,
          [],
          withoutSecrets(rt.env),
          l.root,
          rt.log,
          (f) => `leave stopped before removing anything: ${f}`,
        );
      } catch (err) {
        restorePausedManifests(l);
        removeCreatedDirs([l.pausedManifestsDir]);
        throw err;
      }
      const now = new Date(rt.clock.now());
      // Secrets are not copied into the backup: a copy of the auth key is what leave removes.
      const all = plan.remove.filter((r) => !r.secret).map((r) => r.path);
      const backup = o.keepBackup ? backupExisting(all, l, now) : undefined;
      for (const r of plan.remove) if (r.what === METRICS) removeIfExists(r.path);
      // Revoked (or given up with --force): the keys kept for a retry go with the node.
      dropKeptKeys(l, readState(l));
      rt.crashPoint?.("stage");
      commitRemoval(
        { remove: journalled(plan), parked, dropBackups: !o.keepBackup && plan.backups },
        l,
        rt.crashPoint,
      );
      // After the commit, outside the journal (they lie outside node-join's directories): a leave
      // interrupted before it still has the secrets a renew may need.
      for (const r of plan.remove) if (r.secret) removeIfExists(r.path);
      const timer = detectTimerEnv(l);
      if (timer.systemdRunning && plan.remove.some((r) => timerFiles(l).includes(r.path))) {
        timer.run(["systemctl", "stop", TIMER]);
        timer.run(["systemctl", "daemon-reload"]);
      }
      return { ...base, revocations, ...(backup ? { backup } : {}) };
    },
  );
  // The lock is released (its file removed): the state directory goes when nothing else is in it.
  removeCreatedDirs([l.stateDir, join(l.stateDir, "tpm")]);
  return outcome;
}
