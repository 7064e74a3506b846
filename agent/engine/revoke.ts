// Revoking what a renewal superseded. Every certificate node-join issues stays valid at its CA
// until it expires, and a copy of the node's files (a backup, a cloned disk) renews with any of
// them that is not revoked: step-ca renews any unrevoked certificate it issued over mTLS
// (smallstep/certificates authority/authorize.go authorizeRenew), and so extends the copy's life
// for ever. So after each renewal or re-issue, the certificate it replaced is revoked at its CA
// (RFC 5280 5.3.1 reason superseded), and every one issued is recorded (State.issued) until it
// expires, for `leave --revoke` to revoke whatever is still valid.
//
// step-ca revokes over mTLS with the certificate itself: the body's serial must be the client
// certificate's (api/revoke.go), so only the superseded certificate's own key can revoke it. The
// revocation runs right after the commit, with that key still in memory; when it fails, the key is
// kept beside the state file (0600, keptKeyPath) for the retry of the next run, and removed once
// the certificate is revoked or expired.
import { join } from "node:path";
import type { CaBackend } from "../ca/backend.js";
import { NoRevocationError, errorMessage } from "../common/errors.js";
import { CA_NAMES, CAS, type CaName } from "../pki/cas.js";
import type { KindReading } from "../pki/installed.js";
import type { CertInfo } from "../pki/x509.js";
import { inspect, removeIfExists, writeFileAtomic } from "../store/fsio.js";
import type { Layout } from "../store/layout.js";
import { readState, stateFile, type IssuedCertRecord, type State } from "../store/state.js";
import type { Connected, Issued } from "./issue.js";
import type { Runtime } from "./runtime.js";

/** A certificate's serial in decimal, from node-join's lower-case hex. */
export function serialDecimal(hex: string): string {
  return BigInt(`0x${hex || "0"}`).toString(10);
}

/** "kubelet-client serial 1f2e (7982) at CA kubernetes": how a revocation names a certificate. */
export function revokeSubject(r: {
  kind: string;
  serial: string;
  serialDecimal: string;
  ca: CaName;
}): string {
  return `${r.kind} serial ${r.serial} (${r.serialDecimal}) of CA ${CAS[r.ca].display}`;
}

/** A record of a CA this node-join knows. */
export type IssuedCert = IssuedCertRecord & { ca: CaName };

/** Whether a record names a CA this node-join knows (a state file's record of another is kept). */
export function knownCa(r: IssuedCertRecord): r is IssuedCert {
  return (CA_NAMES as readonly string[]).includes(r.ca);
}

function subjectOf(r: IssuedCert): string {
  return revokeSubject({ ...r, serialDecimal: serialDecimal(r.serial) });
}

/**
 * Where the key of a superseded certificate waits for its revocation: in the state directory
 * (root's, checked as every write target is), mode 0600 as kubeadm's keys, named by its serial
 * alone, so the state file never names a path to read or remove.
 */
export function keptKeyPath(l: Layout, serial: string): string {
  if (!/^[0-9a-f]+$/.test(serial)) throw new Error(`not a serial: ${serial}`);
  return join(l.stateDir, `superseded-${serial}.key`);
}

/** The key kept for a record's retried revocation, if any. */
export function keptKey(l: Layout, r: IssuedCertRecord): string | undefined {
  if (!r.keyKept) return undefined;
  const kept = inspect(keptKeyPath(l, r.serial));
  return kept.kind === "file" ? kept.content!.toString("utf8") : undefined;
}

/** Removes every key the state keeps (leave, once the certificates were revoked). */
export function dropKeptKeys(l: Layout, state: State): void {
  for (const r of state.issued ?? []) if (r.keyKept) removeIfExists(keptKeyPath(l, r.serial));
}

/** A certificate this run replaced, with its key while it is still at hand. */
export interface Superseded {
  kind: string;
  ca: CaName;
  leaf: CertInfo;
  /** The leaf and its intermediates, as installed: step-ca's mTLS needs the whole chain. */
  chainPem: string;
  keyPem: string;
}

/**
 * The installed certificates this run replaced that node-join issued (its state records the
 * serial) and that are still valid; another's certificate (kubeadm's) is not node-join's to revoke.
 */
export function supersededBy(
  readings: readonly KindReading[],
  issued: ReadonlyMap<string, Issued>,
  state: State,
  now: number,
): Superseded[] {
  const out: Superseded[] = [];
  for (const r of readings) {
    const leaf = r.installed?.chain[0];
    const fresh = issued.get(r.kind.name);
    if (!r.installed || !leaf || !fresh || fresh.leaf.serial === leaf.serial) continue;
    const ours =
      state.certificates[r.kind.name]?.serial === leaf.serial ||
      (state.issued ?? []).some((x) => x.serial === leaf.serial && x.ca === r.kind.ca);
    if (ours && leaf.notAfter.getTime() > now)
      out.push({
        kind: r.kind.name,
        ca: r.kind.ca,
        leaf,
        chainPem: r.installed.chain.map((c) => c.pem).join(""),
        keyPem: r.installed.keyPem,
      });
  }
  return out;
}

/** The record of a superseded certificate issued before node-join kept records of all. */
function recordOf(s: Superseded): IssuedCertRecord {
  return {
    kind: s.kind,
    ca: s.ca,
    serial: s.leaf.serial,
    notAfter: s.leaf.notAfter.toISOString(),
    certPem: s.chainPem,
  };
}

/**
 * After a run's commit, under its lock: revokes the certificates this run superseded, retries
 * those an earlier run could not revoke, and drops the records (and kept keys) of expired ones.
 * A failure is a warning and a retry on the next run, never a failed renewal; a CA without a
 * revocation path only has the serial recorded (leave --revoke reports it), without a warning on
 * every run. Writes the state file when a record changed.
 */
export async function revokeSuperseded(
  superseded: readonly Superseded[],
  connected: Connected,
  rt: Runtime,
): Promise<void> {
  const l = rt.layout;
  const state = readState(l);
  const now = rt.clock.now();
  const records = [...(state.issued ?? [])];
  for (const s of superseded)
    if (!records.some((r) => r.serial === s.leaf.serial && r.ca === s.ca))
      records.push(recordOf(s));
  const inMemory = new Map(superseded.map((s) => [s.leaf.serial, s.keyPem]));
  const out: IssuedCertRecord[] = [];
  for (const r of records) {
    if (Date.parse(r.notAfter) <= now) {
      // Expired: no CA renews it any more, and no revocation list needs it (RFC 5280 3.3).
      if (r.keyKept) removeIfExists(keptKeyPath(l, r.serial));
      continue;
    }
    const current = state.certificates[r.kind]?.serial === r.serial;
    const backend = knownCa(r) ? connected.get(r.ca)?.backend : undefined;
    // A CA this run did not reach (a refresh that failed) is asked by the next run.
    if (current || r.revokedAt || r.noRevocation || !backend || !knownCa(r)) out.push(r);
    else out.push(await revokeOne(r, backend, inMemory.get(r.serial) ?? keptKey(l, r), rt));
  }
  if (JSON.stringify(out) === JSON.stringify(state.issued ?? [])) return;
  const { issued: _, ...rest } = state;
  const next: State = out.length ? { ...rest, issued: out } : rest;
  const file = stateFile(next, l);
  if ("content" in file) writeFileAtomic(file.path, file.content, file.mode);
}

/** One superseded certificate revoked, or why not: its updated record. */
async function revokeOne(
  r: IssuedCert,
  backend: CaBackend,
  keyPem: string | undefined,
  rt: Runtime,
): Promise<IssuedCertRecord> {
  const l = rt.layout;
  const { keyKept: _, ...unkept } = r;
  const dropKey = (): IssuedCertRecord => {
    if (r.keyKept) removeIfExists(keptKeyPath(l, r.serial));
    return unkept;
  };
  if (!backend.revoke) return { ...dropKey(), noRevocation: true };
  try {
    await backend.revoke({
      kind: r.kind,
      certPem: r.certPem,
      ...(keyPem !== undefined ? { keyPem } : {}),
      reason: "superseded",
    });
    rt.log(`revoked superseded ${subjectOf(r)}`);
    return { ...dropKey(), revokedAt: new Date(rt.clock.now()).toISOString() };
  } catch (err) {
    if (err instanceof NoRevocationError) return { ...dropKey(), noRevocation: true };
    rt.log(
      `warning: could not revoke superseded ${subjectOf(r)}: ${errorMessage(err)}; the next run retries`,
    );
    if (!backend.revokesWithKey || keyPem === undefined || r.keyKept) return r;
    writeFileAtomic(keptKeyPath(l, r.serial), keyPem, 0o600);
    return { ...r, keyKept: true };
  }
}
