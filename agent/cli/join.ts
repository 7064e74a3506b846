// `node-join join`: issue every certificate the role needs, verify, install as one transaction.
import { checkJoinSettings, renderConfig, type RawValues } from "../config/options.js";
import { kindsFor, type CaName } from "../pki/certs.js";
import {
  caFiles, casOf, checkWriteTargets, connectCas, issueAll, keyMatches, kindFiles, kindStates, recoverInterrupted, resolveIdentity, serviceAccountFiles,
  tableContext, type KindState, type Runtime,
} from "../engine/engine.js";
import { commit, type FileChange } from "../store/transaction.js";
import { acquireLock } from "../store/lock.js";
import type { Settings } from "../config/settings.js";
import { readState, stateFile, withIssued } from "../store/state.js";
import { kubeletServingDropin } from "../store/stores.js";
import { mismatch } from "../pki/verify.js";
import type { CertInfo } from "../pki/x509.js";

export interface JoinOptions {
  settings: Settings;
  values: RawValues;
  force: boolean;
  dryRun: boolean;
}

export interface JoinResult {
  ok: true;
  command: "join";
  dryRun: boolean;
  role: Settings["role"];
  nodeName: string;
  issued: { kind: string; reason: string; serial?: string; notAfter?: string; commonName: string; organizations: string[]; dnsNames: string[]; ips: string[]; ca: CaName }[];
  kept: string[];
  changedFiles: string[];
  backup?: string;
  message: string;
}

export async function runJoin(o: JoinOptions, rt: Runtime): Promise<JoinResult> {
  const s = o.settings;
  const l = rt.layout;
  const kinds = kindsFor(s.role);
  const cas = casOf(kinds);
  checkJoinSettings(s, cas);
  const id = await resolveIdentity(s);
  const ctx = tableContext(s, id);
  const now = () => new Date(rt.clock.now());
  const saFiles = s.role === "control-plane" ? serviceAccountFiles(s, l) : [];

  if (!o.dryRun) checkWriteTargets(l);
  const lock = o.dryRun ? undefined : acquireLock(l.lockFile);
  try {
    if (!o.dryRun) recoverInterrupted(rt);
    const states = kindStates(kinds, ctx, l);
    const connected = o.dryRun ? undefined : await connectCas(s, cas, rt, rt.clock.now() + s.timeoutMs);
    for (const st of states) decide(st, o.force, connected ? (ca) => connected.get(ca)!.anchors : undefined, now());

    const toIssue = states.filter((st) => st.reason !== undefined);
    const summary = (st: KindState) => ({
      kind: st.kind.name,
      reason: st.reason!,
      commonName: st.template.commonName,
      organizations: st.template.organizations,
      dnsNames: st.template.sans.dnsNames,
      ips: st.template.sans.ips,
      ca: st.kind.ca,
    });
    const configChange: FileChange = { path: l.configFile, content: renderConfig(withNodeName(o.values, id.nodeName), l.root), mode: 0o644 };
    if (o.dryRun || !connected) {
      return {
        ok: true,
        command: "join",
        dryRun: true,
        role: s.role,
        nodeName: id.nodeName,
        issued: toIssue.map(summary),
        kept: states.filter((st) => st.reason === undefined).map((st) => st.kind.name),
        changedFiles: [],
        message: `dry run: would request ${toIssue.length} certificate(s) and write the files of ${s.role} node ${id.nodeName}`,
      };
    }

    // Every CA checks it can authorize its requests before any CSR is sent (step-ca: no token spent in vain).
    for (const [ca, conn] of connected) {
      await conn.backend.prepare?.(toIssue.filter((st) => st.kind.ca === ca).map((st) => ({ kind: st.kind.name, template: st.template })));
    }
    const issued = await issueAll(toIssue, connected, s.keyAlgorithm, rt, now);
    const anchors = new Map([...connected].map(([ca, c]) => [ca, c.anchors] as const));
    const caPem = new Map([...anchors].map(([ca, a]) => [ca, a.map((c) => c.pem).join("")] as const));
    const issuedList = [...issued.values()].map((i) => ({ kind: i.kind.name, leaf: i.leaf }));
    const changes: FileChange[] = [
      ...caFiles(s.role, anchors, l),
      ...kindFiles(states, issued, caPem, ctx, l, now()),
      ...saFiles,
      kubeletServingDropin(l),
      configChange,
      ...(issuedList.length ? [stateFile(withIssued(readState(l), issuedList, now(), false), l)] : []),
    ];
    const result = commit(changes, l, now());
    const message =
      result.changed.length === 0
        ? `nothing to do: ${s.role} node ${id.nodeName} already has valid certificates matching its config`
        : `joined ${s.role} node ${id.nodeName}: issued ${issued.size} certificate(s), wrote ${result.changed.length} file(s)`;
    return {
      ok: true,
      command: "join",
      dryRun: false,
      role: s.role,
      nodeName: id.nodeName,
      issued: toIssue.map((st) => ({
        ...summary(st),
        serial: issued.get(st.kind.name)!.leaf.serial,
        notAfter: issued.get(st.kind.name)!.leaf.notAfter.toISOString(),
      })),
      kept: states.filter((st) => st.reason === undefined).map((st) => st.kind.name),
      changedFiles: result.changed,
      ...(result.backup ? { backup: result.backup } : {}),
      message,
    };
  } finally {
    lock?.release();
  }
}

function withNodeName(values: RawValues, nodeName: string): RawValues {
  const out = new Map(values);
  out.set("nodeName", nodeName);
  return out;
}

/** Sets st.reason when the kind must be issued: forced, missing, broken, or no longer matching. */
function decide(st: KindState, force: boolean, anchorsOf: ((ca: CaName) => CertInfo[]) | undefined, now: Date): void {
  if (st.reason !== undefined) return;
  if (force) {
    st.reason = "forced";
    return;
  }
  const inst = st.installed!;
  if (!keyMatches(inst)) {
    st.reason = "installed key does not match its certificate";
    return;
  }
  const [leaf, ...rest] = inst.chain;
  const why = mismatch(leaf!, st.template, anchorsOf?.(st.kind.ca), now, rest);
  if (why) st.reason = why;
}
