// What node-join itself issued: lets `status` tell managed files from foreign ones and the
// metrics report the last successful renewal.
import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import { inspect, type FileState } from "./fsio.js";
import type { Layout } from "./layout.js";
import { readRegularFile } from "./safe-read.js";
import type { FileChange } from "./transaction.js";

export interface CertRecord {
  serial: string;
  notAfter: string;
  issuedAt: string;
}

export interface State {
  version: 1;
  certificates: Record<string, CertRecord>;
  lastRenewal?: string;
  /**
   * By CA name: the URL of the server that last answered, asked first on the next run when it is
   * still one of the CA's URLs.
   */
  caUrls?: Record<string, string>;
  /**
   * Per CA (cas.<ca>), the signer it was first seen signing with and when: renew.onSignerChange
   * early spreads the renewals of what the previous signer signed from that moment.
   */
  signers?: Record<string, SignerRecord>;
  /**
   * Every file the install transaction wrote (paths relative to the root, as the journal names
   * them) and its digest then (fileDigest): `leave` removes a file only while it still is what
   * node-join wrote.
   */
  files?: Record<string, string>;
  /**
   * Per CA, what its server last sent that no anchor names (CaBackend.offered): never trusted;
   * `trust list` shows it, so that a rotation's new root can be pinned once checked.
   */
  offered?: Record<string, OfferedRecord[]>;
  /**
   * Every certificate node-join issued on this node, until it expires: a copy of the node's files
   * renews with any of them that is still valid, so `leave --revoke` revokes them all and a
   * renewal revokes the one it superseded (engine/revoke.ts, README "Revocation at the CA").
   */
  issued?: IssuedCertRecord[];
}

/** A CA certificate a CA server offered that this node does not trust. */
export interface OfferedRecord {
  pin: string;
  subject: string;
  notAfter: string;
}

/**
 * The state with each reached CA's offered certificates as it sent them this run; a CA with none
 * loses its entry. Undefined when nothing changed.
 */
export function withOffered(
  state: State,
  offered: ReadonlyMap<string, OfferedRecord[]>,
): State | undefined {
  const next = { ...state.offered };
  for (const [ca, list] of offered)
    if (list.length) next[ca] = list;
    else delete next[ca];
  if (JSON.stringify(next) === JSON.stringify(state.offered ?? {})) return undefined;
  const { offered: _old, ...rest } = state;
  return Object.keys(next).length ? { ...rest, offered: next } : rest;
}

/** One certificate node-join issued, as long as it is valid. */
export interface IssuedCertRecord {
  kind: string;
  /** The CA's name (pki/cas.ts CaName). */
  ca: string;
  /** Lower-case hex. */
  serial: string;
  notAfter: string;
  /**
   * The leaf, then its intermediates (public): what a revocation names, CFSSL by the leaf's serial
   * and authority key id, step-ca by the mTLS client certificate chain itself.
   */
  certPem: string;
  /** When node-join revoked it (a superseded one after a renewal). */
  revokedAt?: string;
  /**
   * Its CA has no revocation path (no certificate database): renewals no longer try; leave
   * --revoke still does, and reports it.
   */
  noRevocation?: true;
  /**
   * Its key is kept in the state directory (revoke.ts keptKeyPath) for a retry: its CA revokes
   * with the key (step-ca) and the revocation after the renewal failed.
   */
  keyKept?: true;
}

export interface SignerRecord {
  pin: string;
  seenAt: string;
}

/** One certificate this run issued, as the state file records it. */
export interface IssuedRecord {
  kind: string;
  ca: string;
  serial: string;
  notAfter: Date;
  /** The leaf, for the record of every certificate issued (State.issued). */
  certPem: string;
}

export function readState(l: Layout): State {
  // Its own file, replaced by rename, never a link: a FIFO or link there is refused (exit 6).
  const raw = readRegularFile(l.stateFile);
  if (!raw) return { version: 1, certificates: {} };
  try {
    const parsed = JSON.parse(raw.toString("utf8")) as State;
    if (parsed && typeof parsed.certificates === "object") return parsed;
  } catch {
    // a corrupt state file only loses the "managed" marks; the certificates themselves are checked
    // anew
  }
  return { version: 1, certificates: {} };
}

export function withIssued(
  state: State,
  issued: IssuedRecord[],
  now: Date,
  renewal: boolean,
): State {
  const certificates = { ...state.certificates };
  const records = [...(state.issued ?? [])];
  for (const i of issued) {
    const notAfter = i.notAfter.toISOString();
    certificates[i.kind] = { serial: i.serial, notAfter, issuedAt: now.toISOString() };
    if (!records.some((r) => r.serial === i.serial && r.ca === i.ca))
      records.push({ kind: i.kind, ca: i.ca, serial: i.serial, notAfter, certPem: i.certPem });
  }
  return {
    ...state,
    certificates,
    ...(records.length ? { issued: records } : {}),
    ...(renewal && issued.length ? { lastRenewal: now.toISOString() } : {}),
  };
}

/** The state with the servers that answered this run remembered (the others kept as they were). */
export function withCaUrls(state: State, answered: ReadonlyMap<string, string>): State {
  if (answered.size === 0) return state;
  return { ...state, caUrls: { ...state.caUrls, ...Object.fromEntries(answered) } };
}

export function stateFile(state: State, l: Layout): FileChange {
  return { path: l.stateFile, content: `${JSON.stringify(state, null, 2)}\n`, mode: 0o600 };
}

/**
 * What node-join wrote at a path, as the state file records it: `sha256:<hex>` of a file's bytes,
 * `symlink:<target>` of a link (the kubelet store's -current.pem). The mode is left out: a chmod
 * does not make a file someone else's.
 */
export function fileDigest(
  x: { content: string | Buffer } | { symlink: string } | FileState,
): string | undefined {
  if ("symlink" in x) return `symlink:${x.symlink}`;
  if ("kind" in x) {
    if (x.kind === "symlink") return `symlink:${x.target!}`;
    if (x.kind !== "file") return undefined;
  }
  const content = "kind" in x ? x.content! : x.content;
  return `sha256:${createHash("sha256").update(content).digest("hex")}`;
}

/**
 * The state with the digests of `changes` (the files of one transaction, the state file itself
 * left out: it cannot record its own digest) recorded; entries of files that are gone are dropped
 * (a kubelet file a renewal removed as a leftover).
 */
export function withFiles(state: State, changes: readonly FileChange[], l: Layout): State {
  const files: Record<string, string> = {};
  for (const [rel, digest] of Object.entries(state.files ?? {}))
    if (inspect(join(l.root, rel)).kind !== "missing") files[rel] = digest;
  for (const [rel, digest] of digests(changes, l)) files[rel] = digest;
  return { ...state, files: Object.fromEntries(Object.entries(files).sort()) };
}

/**
 * Whether the state already records each of `changes` as it is: only then does a commit need no
 * new state file (dropping the entries of files gone waits for the next write).
 */
export function recordsFiles(state: State, changes: readonly FileChange[], l: Layout): boolean {
  return digests(changes, l).every(([rel, digest]) => state.files?.[rel] === digest);
}

function digests(changes: readonly FileChange[], l: Layout): [string, string][] {
  return changes
    .filter((c) => c.path !== l.stateFile)
    .map((c) => [
      relative(l.root, c.path),
      fileDigest("symlink" in c ? c : { content: c.content })!,
    ]);
}
