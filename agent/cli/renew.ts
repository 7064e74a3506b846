// `node-join renew`: renew every managed certificate that is due, broken, or no longer matches the
// node, as one transaction; then, and only then, run the post-renew hooks.
import { kindsFor, CA_KINDS, type CaName } from "../pki/certs.js";
import { deadlinePolicy, dueness } from "../pki/deadline.js";
import {
  caFiles, casOf, checkWriteTargets, connectCas, credentialsOf, issueAll, keyMatches, kindFiles, kindStates, recoverInterrupted, resolveIdentity, tableContext,
  type KindState, type Runtime,
} from "../engine/engine.js";
import { UsageError } from "../common/errors.js";
import { removeIfExists } from "../store/fsio.js";
import { defaultHooks, runHooks } from "../ops/hooks.js";
import { commit, type FileChange } from "../store/transaction.js";
import { acquireLock } from "../store/lock.js";
import type { Settings } from "../config/settings.js";
import { readState, stateFile, withIssued } from "../store/state.js";
import { oldKubeletFiles, readCaFile } from "../store/stores.js";
import { mismatch } from "../pki/verify.js";
import type { CertInfo } from "../pki/x509.js";

/** Previous timestamped kubelet files kept beside the current one. */
export const KUBELET_FILES_KEPT = 3;

export interface RenewOptions {
  settings: Settings;
  force: boolean;
  dryRun: boolean;
  /** The config file was found: renew needs what join persisted. */
  configured: boolean;
}

export interface RenewedCert {
  kind: string;
  reason: string;
  expired: boolean;
  serial?: string;
  notAfter?: string;
}

export interface RenewResult {
  ok: true;
  command: "renew";
  dryRun: boolean;
  nodeName: string;
  renewed: RenewedCert[];
  nextDeadline?: string;
  hooks: { argv: string[]; exitCode: number }[];
  changedFiles: string[];
  message: string;
}

export async function runRenew(o: RenewOptions, rt: Runtime): Promise<RenewResult> {
  const s = o.settings;
  const l = rt.layout;
  if (!o.configured) throw new UsageError(`no config at ${l.configFile}: run node-join join first (renew needs the settings join persisted)`);
  const id = await resolveIdentity(s, { fast: true });
  const ctx = tableContext(s, id);
  const now = () => new Date(rt.clock.now());
  if (!o.dryRun) checkWriteTargets(l);
  const lock = o.dryRun ? undefined : acquireLock(l.lockFile);
  try {
    if (!o.dryRun) recoverInterrupted(rt);
    const kinds = kindsFor(s.role);
    const states = kindStates(kinds, ctx, l);
    const installedAnchors = new Map<CaName, CertInfo[] | undefined>(CA_KINDS.map((c) => [c.ca, readCaFile(c, l)]));
    const policy = deadlinePolicy(id.nodeName, s.renew.beforeMs);
    const expired = new Set<string>();
    let nextDeadline: Date | undefined;
    for (const st of states) {
      if (st.reason !== undefined) continue; // missing or unreadable: repair
      const inst = st.installed!;
      const [leaf, ...rest] = inst.chain;
      if (!keyMatches(inst)) {
        st.reason = "installed key does not match its certificate";
        continue;
      }
      // A changed name or IP renews at once, like the kubelet's template check.
      const why = mismatch(leaf!, st.template, installedAnchors.get(st.kind.ca), undefined, rest);
      if (why) {
        st.reason = why;
        continue;
      }
      const d = dueness(leaf!, policy, now());
      if (d.due) {
        st.reason = d.reason;
        if (d.expired) expired.add(st.kind.name);
      } else if (o.force) {
        st.reason = "forced";
      } else if (!nextDeadline || d.deadline < nextDeadline) {
        nextDeadline = d.deadline;
      }
    }
    const due = states.filter((st) => st.reason !== undefined);
    const summary = (st: KindState): RenewedCert => ({ kind: st.kind.name, reason: st.reason!, expired: expired.has(st.kind.name) });
    const base = { ok: true as const, command: "renew" as const, nodeName: id.nodeName, hooks: [], changedFiles: [] };
    if (due.length === 0) {
      return {
        ...base,
        dryRun: o.dryRun,
        renewed: [],
        ...(nextDeadline ? { nextDeadline: nextDeadline.toISOString() } : {}),
        message: `nothing to renew, next deadline ${nextDeadline?.toISOString() ?? "none"}`,
      };
    }
    if (o.dryRun) {
      return { ...base, dryRun: true, renewed: due.map(summary), message: `dry run: would renew ${due.map((d) => d.kind.name).join(", ")}` };
    }
    const cas = casOf(due.map((d) => d.kind));
    const connected = await connectCas(s, cas, rt, rt.clock.now() + s.timeoutMs);
    const usable = (st: KindState) => st.installed !== undefined && keyMatches(st.installed);
    const issued = await issueAll(
      due, connected, s.keyAlgorithm, rt, now,
      (st) => (s.renew.reuseKey && usable(st) ? st.installed!.keyPem : undefined),
      (st) => (usable(st) ? credentialsOf(st.installed!) : undefined),
    );
    const anchors = new Map<CaName, CertInfo[]>();
    for (const c of CA_KINDS) {
      const a = connected.get(c.ca)?.anchors ?? installedAnchors.get(c.ca);
      if (a) anchors.set(c.ca, a);
    }
    const caPem = new Map([...anchors].map(([ca, a]) => [ca, a.map((c) => c.pem).join("")] as const));
    const issuedList = [...issued.values()].map((i) => ({ kind: i.kind.name, leaf: i.leaf }));
    const changes: FileChange[] = [
      // Only the CAs asked this run: their certificate may have been re-issued (same key, new validity).
      ...caFiles(s.role, new Map([...connected].map(([ca, c]) => [ca, c.anchors] as const)), l),
      ...kindFiles(states, issued, caPem, ctx, l, now()),
      stateFile(withIssued(readState(l), issuedList, now(), true), l),
    ];
    const result = commit(changes, l, now());
    for (const kind of due.filter((d) => d.kind.store.type === "kubelet")) {
      for (const old of oldKubeletFiles(l.kubeletPkiDir, (kind.kind.store as { prefix: string }).prefix, KUBELET_FILES_KEPT)) removeIfExists(old);
    }
    const renewed = due.map((st) => ({ ...summary(st), serial: issued.get(st.kind.name)!.leaf.serial, notAfter: issued.get(st.kind.name)!.leaf.notAfter.toISOString() }));
    const hooks = s.hooks.postRenew ?? (l.root === "/" ? defaultHooks(s.role) : []);
    if (!s.hooks.postRenew && l.root !== "/") rt.log("not running the default post-renew hooks under --root (set hooks.postRenew to run some)");
    const hookRuns = runHooks(hooks, renewed.map((r) => r.kind), rt.env, l.root, rt.log);
    const expiredNote = expired.size ? ` (${[...expired].join(", ")} had expired)` : "";
    return {
      ...base,
      dryRun: false,
      renewed,
      hooks: hookRuns,
      changedFiles: result.changed,
      message: `renewed ${renewed.length}: ${renewed.map((r) => r.kind).join(", ")}${expiredNote}`,
    };
  } finally {
    lock?.release();
  }
}
