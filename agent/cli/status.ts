// `node-join status`: kubeadm's `certs check-expiration` tables for what is on disk, plus key type,
// file and whether node-join manages it.
import { join } from "node:path";
import { CA_KINDS, caKindsFor, kindsFor, type CaName } from "../pki/certs.js";
import { inspect } from "../store/fsio.js";
import { describeKey } from "../pki/keys.js";
import { createPrivateKey } from "node:crypto";
import type { Layout } from "../store/layout.js";
import type { Settings } from "../config/settings.js";
import { readState } from "../store/state.js";
import { readCaFile, readInstalled } from "../store/stores.js";
import { hostPath } from "../config/options.js";
import { kubeadmDate, shortHumanDuration, table } from "./format.js";
import { keyMatches } from "../engine/engine.js";

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
  role: Settings["role"];
  certificates: CertStatus[];
  certificateAuthorities: CaStatus[];
}

const caKindName = (ca: CaName): string => CA_KINDS.find((k) => k.ca === ca)!.name;

export function collectStatus(role: Settings["role"], l: Layout, now: Date): StatusResult {
  const state = readState(l);
  const external = (ca: CaName) => inspect(join(l.pkiDir, CA_KINDS.find((k) => k.ca === ca)!.keyFile)).kind === "missing";
  const certificates = kindsFor(role).map((kind): CertStatus => {
    const r = readInstalled(kind, l);
    const base = { name: kind.name, file: hostPath(r.ok ? r.value.file : r.file, l.root), certificateAuthority: caKindName(kind.ca), externallyManaged: external(kind.ca) };
    if (!r.ok) return { ...base, managed: false, problem: r.problem };
    const leaf = r.value.chain[0]!;
    let keyType: string | undefined;
    let problem: string | undefined;
    try {
      keyType = describeKey(createPrivateKey(r.value.keyPem));
      if (!keyMatches(r.value)) problem = "key does not match certificate";
    } catch {
      problem = "private key unreadable";
    }
    if (!problem && leaf.notAfter <= now) problem = "expired";
    return {
      ...base,
      expires: leaf.notAfter.toISOString(),
      residualSeconds: Math.floor((leaf.notAfter.getTime() - now.getTime()) / 1000),
      ...(keyType ? { keyType } : {}),
      managed: state.certificates[kind.name]?.serial === leaf.serial,
      ...(problem ? { problem } : {}),
    };
  });
  const certificateAuthorities = caKindsFor(role).map((ca): CaStatus => {
    const file = join(l.pkiDir, ca.file);
    const certs = readCaFile(ca, l);
    const base = { name: ca.name, file: hostPath(file, l.root), externallyManaged: external(ca.ca) };
    if (!certs) return { ...base, problem: inspect(file).kind === "missing" ? "missing" : "unreadable" };
    const c = certs[0]!;
    return { ...base, expires: c.notAfter.toISOString(), residualSeconds: Math.floor((c.notAfter.getTime() - now.getTime()) / 1000) };
  });
  return { ok: true, command: "status", role, certificates, certificateAuthorities };
}

const yesNo = (b: boolean) => (b ? "yes" : "no");
const expiry = (e: { expires?: string; residualSeconds?: number }) =>
  e.expires ? [kubeadmDate(new Date(e.expires)), shortHumanDuration(e.residualSeconds! * 1000)] : ["", ""];

export function formatStatus(r: StatusResult): string {
  const certRows = r.certificates.map((c) => [
    c.problem === "missing" ? `!MISSING! ${c.name}` : c.name,
    ...expiry(c),
    c.certificateAuthority,
    yesNo(c.externallyManaged),
    c.keyType ?? "",
    yesNo(c.managed),
    c.file + (c.problem && c.problem !== "missing" ? `  (${c.problem})` : ""),
  ]);
  const caRows = r.certificateAuthorities.map((c) => [
    c.problem === "missing" ? `!MISSING! ${c.name}` : c.name,
    ...expiry(c),
    yesNo(c.externallyManaged),
    c.file,
  ]);
  return (
    table(["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED", "KEY TYPE", "MANAGED", "FILE"], certRows) +
    "\n" +
    table(["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED", "FILE"], caRows)
  );
}
