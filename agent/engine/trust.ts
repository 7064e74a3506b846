// `node-join trust add|remove|list`: the anchors of one CA on a joined node, changed during a CA
// rotation (a new CA trusted beside the old one, then the old one retired). The pins live in the
// node's config (cas.<ca>.certHashes, kubeadm's SPKI pins); the CA file and the kubeconfigs'
// certificate-authority-data follow them, written by run() in one transaction with the config.
import { UsageError } from "../common/errors.js";
import { isoDate } from "../common/time.js";
import type { Settings } from "../config/settings.js";
import { parseConfigText, type RawValues } from "../config/sources.js";
import { anchorOf, loadPemFile, trustedBundle } from "../ca/trust.js";
import { CAS, casFor, type CaName } from "../pki/cas.js";
import { readCaFile, readRole, subjectLine } from "../pki/installed.js";
import { buildChain, certFingerprint, certPin, isPin, type CertInfo } from "../pki/x509.js";
import type { Layout } from "../store/layout.js";
import { readState } from "../store/state.js";
import { readTrustedFile } from "../store/strict-modes.js";
import type { PlannedFile } from "../store/transaction.js";
import { due } from "./assess.js";
import { policyFor } from "./policy.js";
import { run, type RunOutcome } from "./run.js";
import type { Runtime } from "./runtime.js";

/** The CA a --ca value names ("kubernetes", "front-proxy", "etcd"), on a node of this role. */
export function trustCa(value: string, role: Settings["role"]): CaName {
  const ca = Object.values(CAS).find((c) => c.display === value);
  if (!ca)
    throw new UsageError(
      `--ca ${JSON.stringify(value)}: must be one of ${Object.values(CAS)
        .map((c) => c.display)
        .join(", ")}`,
    );
  if (!casFor(role).includes(ca))
    throw new UsageError(`--ca ${value}: a ${role} node does not trust the ${ca.title}`);
  return ca.name;
}

/** What the operator names to trust or retire: a pin, or a PEM file of CA certificates. */
export interface TrustInput {
  certHash?: string;
  caFile?: string;
}

/** The pins of a TrustInput, and the certificates a file gives; exactly one of the two. */
export function trustInput(i: TrustInput): { pins: string[]; certs: CertInfo[] } {
  if ((i.certHash === undefined) === (i.caFile === undefined))
    throw new UsageError("give exactly one of --ca-cert-hash sha256:<hex> and --ca-file <pem>");
  if (i.certHash !== undefined) {
    if (!isPin(i.certHash))
      throw new UsageError(
        `--ca-cert-hash ${JSON.stringify(i.certHash)}: must be sha256: and 64 lower-case hex digits (kubeadm's pin of the CA's public key)`,
      );
    return { pins: [i.certHash], certs: [] };
  }
  const certs = loadPemFile(i.caFile!, "--ca-file");
  const leaf = certs.find((c) => !c.isCa);
  if (leaf)
    throw new UsageError(
      `--ca-file ${i.caFile}: certificate "${leaf.commonName}" is not a CA certificate`,
    );
  return { pins: [...new Set(certs.map(certPin))], certs };
}

/** The node's config as its file says it (not merged with the environment): what is rewritten. */
function fileValues(configFile: string): RawValues {
  const text = readTrustedFile(configFile, "config file", "config").toString("utf8");
  return parseConfigText(text, configFile);
}

/** Settings with these pins for a CA, and no step-ca fingerprint (currentPins moved it). */
function withPins(s: Settings, ca: CaName, pins: string[]): Settings {
  const { fingerprint: _moved, ...rest } = s.cas[ca];
  return { ...s, cas: { ...s.cas, [ca]: { ...rest, certHashes: pins } } };
}

/**
 * Removes a CA's fingerprint from the config; a CA that inherited it from the kubernetes CA (the
 * same step-ca, config.ts caSettings) gets it under its own key, unchanged.
 */
function dropFingerprint(c: TrustChange, values: RawValues): void {
  const fp = c.settings.cas[c.ca].fingerprint;
  if (fp === undefined) return;
  for (const other of casFor(c.settings.role))
    if (
      other.name !== c.ca &&
      c.settings.cas[other.name].fingerprint === fp &&
      !values.has(`cas.${other.name}.fingerprint`)
    )
      values.set(`cas.${other.name}.fingerprint`, fp);
  values.delete(`cas.${c.ca}.fingerprint`);
}

export interface TrustChangeResult {
  ok: true;
  command: "trust add" | "trust remove";
  ca: string;
  /** The pins added or removed. */
  pins: string[];
  /** The CA's bundle after the change: what its CA file holds. */
  bundle: { subject: string; pin: string; notAfter: string }[];
  /** Certificates renewed first (trust remove --renew). */
  renewed: string[];
  changedFiles: string[];
  files: PlannedFile[];
  message: string;
}

export interface TrustChange {
  settings: Settings;
  /** The config file to rewrite (join's, or --config). */
  configFile: string;
  ca: CaName;
  input: TrustInput;
  /** Reach the CA servers to refresh the bundles (else recompute them from the node's files). */
  refresh: boolean;
  /** trust remove: renew first the leaves that chain only to the CA being retired. */
  renew?: boolean;
}

/**
 * The run that writes the config with these pins, and the bundles that follow from them: trust
 * add with the certificates --ca-file gave, trust remove renewing first what only the retiring CA
 * signed (`renewOrphans`).
 */
async function applyPins(
  c: TrustChange,
  pins: string[],
  change: { add: CertInfo[] } | { renewOrphans: boolean },
  migrate: boolean,
  rt: Runtime,
): Promise<RunOutcome> {
  const values = fileValues(c.configFile);
  values.set(`cas.${c.ca}.certHashes`, pins);
  if (migrate) dropFingerprint(c, values);
  const s = withPins(c.settings, c.ca, pins);
  const config = { path: c.configFile, values };
  const policy =
    "add" in change
      ? policyFor("trust-add", s, rt.layout, {
          refresh: c.refresh,
          ca: c.ca,
          certs: change.add,
          config,
        })
      : policyFor("trust-remove", s, rt.layout, {
          refresh: c.refresh,
          renewOrphans: change.renewOrphans,
          config,
        });
  return run(s, policy, rt);
}

function bundleRows(ca: CaName, l: Layout): TrustChangeResult["bundle"] {
  return (readCaFile(CAS[ca], l) ?? []).map((c) => ({
    subject: `CN=${c.commonName}`,
    pin: certPin(c),
    notAfter: isoDate(c.notAfter),
  }));
}

/**
 * The pins of a CA as trust add and remove change them. A CA anchored by a step-ca root fingerprint
 * has it replaced by the pin of that root (the installed bundle's certificate of that
 * fingerprint): authenticateCa checks every pin against the fingerprint's root, so a pin of a
 * rotation's new root could never be added beside it, and the old root must be retirable by its
 * pin once the new one is pinned. step-ca authenticates the roots GET /roots sends by the pins
 * then (README "CA rotation"). `migrate`: the fingerprint moves to a pin.
 */
function currentPins(c: TrustChange, installed: CertInfo[]): { pins: string[]; migrate: boolean } {
  const cs = c.settings.cas[c.ca];
  const fp = cs.fingerprint;
  if (fp === undefined) return { pins: cs.certHashes, migrate: false };
  const rootOf = installed.find((k) => certFingerprint(k) === fp);
  if (!rootOf)
    throw new UsageError(
      `CA ${CAS[c.ca].display}: the root of fingerprint ${fp} (config key cas.${c.ca}.fingerprint) is not in ${CAS[c.ca].file}: run node-join renew first, so that pins can replace the fingerprint`,
    );
  return { pins: [...new Set([certPin(rootOf), ...cs.certHashes])], migrate: true };
}

export async function trustAdd(c: TrustChange, rt: Runtime): Promise<TrustChangeResult> {
  const { pins, certs } = trustInput(c.input);
  const { pins: have, migrate } = currentPins(c, readCaFile(CAS[c.ca], rt.layout) ?? []);
  const added = pins.filter((p) => !have.includes(p));
  const r = await applyPins(c, [...have, ...added], { add: certs }, migrate, rt);
  const bundle = bundleRows(c.ca, rt.layout);
  const unknown = pins.filter((p) => !bundle.some((b) => b.pin === p));
  const display = CAS[c.ca].display;
  const message =
    (added.length === 0
      ? `CA ${display}: already trusted: ${pins.join(", ")}`
      : `CA ${display}: trusting ${added.join(", ")}`) +
    `; its bundle holds ${bundle.length} certificate(s)` +
    (unknown.length
      ? `; no certificate of ${unknown.join(", ")} is known yet (the CA server does not send it: give --ca-file, or run node-join renew once it does)`
      : "");
  return {
    ok: true,
    command: "trust add",
    ca: display,
    pins: added,
    bundle,
    renewed: [],
    changedFiles: r.changedFiles,
    files: r.files,
    message,
  };
}

export async function trustRemove(c: TrustChange, rt: Runtime): Promise<TrustChangeResult> {
  const { pins } = trustInput(c.input);
  const settings = c.settings.cas[c.ca];
  const ca = CAS[c.ca];
  const display = ca.display;
  const installed = readCaFile(ca, rt.layout) ?? [];
  const { pins: have, migrate } = currentPins(c, installed);
  const where = `--ca-cert-hash of CA ${display} (config key cas.${c.ca}.certHashes)`;
  const unknown = pins.filter((p) => !have.includes(p));
  if (unknown.length)
    throw new UsageError(
      `${unknown.join(", ")} is not a ${where}: node-join trust list shows the pins`,
    );
  const left = have.filter((p) => !pins.includes(p));
  const { fingerprint: _moved, ...rest } = settings;
  const after = { ...rest, certHashes: left };
  const bundle = trustedBundle(after, [], installed);
  // A CA certificate of the bundle that only the retiring one vouched for (a root learned from
  // step-ca's /roots, a certificate cross-signed by the old CA) would be refused by the next run:
  // it needs its own pin first.
  const unanchored = installed.filter(
    (k) => !pins.includes(certPin(k)) && !bundle.some((b) => b.der.equals(k.der)),
  );
  if (unanchored.length > 0) {
    const first = unanchored[0]!;
    throw new UsageError(
      `CA ${display}: removing ${pins.join(", ")} would leave "${subjectLine(first)}" (${certPin(first)}) of ${ca.file} without an anchor: pin it first with node-join trust add --ca ${display} --ca-cert-hash ${certPin(first)}`,
    );
  }
  if (bundle.length === 0)
    throw new UsageError(
      `CA ${display}: removing ${pins.join(", ")} would leave no trusted certificate in ${ca.file}: trust the new CA first (node-join trust add), and run node-join renew until its certificate is in the bundle`,
    );
  // A leaf that chains only to the retiring CA would be distrusted by every peer that drops it.
  const orphans = readRole(c.settings.role, rt.layout).filter((k) => {
    if (k.kind.ca !== c.ca || !k.installed) return false;
    const [leaf, ...rest] = k.installed.chain as [CertInfo, ...CertInfo[]];
    return !buildChain(leaf, rest, bundle);
  });
  if (orphans.length > 0 && !c.renew)
    throw new UsageError(
      `CA ${display}: ${orphans.map((o) => `${o.kind.name} (${o.file})`).join(", ")} chains only to the CA certificate of ${pins.join(", ")}: renew it against the new signer first (node-join trust remove --renew), or wait until node-join renew has renewed ${orphans.length > 1 ? "them" : "it"} from the new CA, then remove the pin`,
    );
  const r = await applyPins(c, left, { renewOrphans: orphans.length > 0 }, migrate, rt);
  const renewed = due(r.assessments)
    .filter(() => orphans.length > 0)
    .map((a) => a.kind.name)
    .filter((k) => r.issued.has(k));
  const rows = bundleRows(c.ca, rt.layout);
  return {
    ok: true,
    command: "trust remove",
    ca: display,
    pins,
    bundle: rows,
    renewed,
    changedFiles: r.changedFiles,
    files: r.files,
    message:
      `CA ${display}: no longer trusting ${pins.join(", ")}` +
      (renewed.length ? `; renewed ${renewed.join(", ")} first` : "") +
      `; its bundle holds ${rows.length} certificate(s)`,
  };
}

export interface TrustListRow {
  /** sha256:<hex> (certHashes), or the step-ca fingerprint, or a CA file's certificate's pin. */
  pin: string;
  /**
   * Which setting names it; none: in the installed bundle, named by nothing (the next refresh
   * drops it); offered: sent by the CA server at the last run, never trusted (CaBackend.offered).
   */
  source: "certHashes" | "fingerprint" | "caFile" | "none" | "offered";
  /** The certificate of the bundle it matches; none: not known on this node yet. */
  subject?: string;
  notAfter?: string;
  inBundle: boolean;
}

export interface TrustListResult {
  ok: true;
  command: "trust list";
  cas: { ca: string; file: string; pins: TrustListRow[] }[];
}

/**
 * Per CA of the role: every anchor the config names, the certificate of the installed bundle it
 * matches; and the installed certificates no anchor names (dropped by the next refresh).
 */
export function trustList(s: Settings, l: Layout): TrustListResult {
  const offered = readState(l).offered ?? {};
  return {
    ok: true,
    command: "trust list",
    cas: casFor(s.role).map((ca) => {
      const cs = s.cas[ca.name];
      const bundle = readCaFile(ca, l) ?? [];
      const caFileCerts = cs.caFile ? loadPemFile(cs.caFile, "CA file") : [];
      const row = (
        pin: string,
        source: TrustListRow["source"],
        match: (c: CertInfo) => boolean,
      ): TrustListRow => {
        const cert = bundle.find(match);
        return {
          pin,
          source,
          ...(cert ? { subject: `CN=${cert.commonName}`, notAfter: isoDate(cert.notAfter) } : {}),
          inBundle: cert !== undefined,
        };
      };
      const pins = [
        ...cs.certHashes.map((p) => row(p, "certHashes", (c) => certPin(c) === p)),
        ...(cs.fingerprint
          ? [row(cs.fingerprint, "fingerprint", (c) => certFingerprint(c) === cs.fingerprint)]
          : []),
        ...caFileCerts.map((f) => row(certPin(f), "caFile", (c) => c.der.equals(f.der))),
        ...bundle
          .filter((c) => anchorOf(cs, c, caFileCerts) === undefined)
          .map((c) => row(certPin(c), "none", (b) => b === c)),
      ];
      for (const o of offered[ca.name] ?? [])
        if (!pins.some((p) => p.pin === o.pin))
          pins.push({
            pin: o.pin,
            source: "offered",
            subject: o.subject,
            notAfter: isoDate(new Date(o.notAfter)),
            inBundle: false,
          });
      return { ca: ca.display, file: `${l.pkiDir}/${ca.file}`, pins };
    }),
  };
}

export function formatTrustList(r: TrustListResult): string {
  return r.cas
    .map((ca) => {
      const lines = ca.pins.map((p) => {
        const what = p.subject
          ? `${p.subject}, expires ${p.notAfter}`
          : "no certificate known on this node yet";
        const state =
          p.source === "none"
            ? "in the bundle, pinned by nothing: the next renew drops it; pin it to keep it"
            : p.source === "offered"
              ? `offered by the CA server, not trusted: check this pin with the CA's operator, then node-join trust add --ca ${ca.ca} --ca-cert-hash ${p.pin}`
              : p.inBundle
                ? "in the bundle"
                : "not in the bundle";
        const via = p.source === "certHashes" || p.source === "none" ? "" : ` (${p.source})`;
        return `  ${p.pin}${via}\n    ${what}; ${state}\n`;
      });
      return `CA ${ca.ca} (${ca.file}):\n${lines.join("")}`;
    })
    .join("");
}
