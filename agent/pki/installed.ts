// The one reader of what is installed: join and renew assess it, status shows it, the metrics
// export it. Each kind's store reads the PEM text; here it becomes certificates.
import { createPrivateKey } from "node:crypto";
import { basename, join } from "node:path";
import type { Credentials } from "../store/cert-store.js";
import { inspect, readNoFollow } from "../store/fsio.js";
import type { Layout } from "../store/layout.js";
import { casFor, type CaDescriptor } from "./cas.js";
import { kindsFor, type CertKind } from "./certs.js";
import type { Role } from "./roles.js";
import { parseCert, splitPemCertificates, type CertInfo } from "./x509.js";

export interface Installed {
  chain: CertInfo[];
  keyPem: string;
}

export interface KindReading {
  kind: CertKind;
  /** The file `status` names for this kind. */
  file: string;
  installed?: Installed;
  /** What is wrong when nothing usable is installed: "missing", a parse error, ... */
  problem?: string;
}

export function readInstalled(kind: CertKind, l: Layout): KindReading {
  const r = kind.store.read(l);
  if (!r.ok) return { kind, file: r.file, problem: r.problem };
  try {
    const chain = splitPemCertificates(r.credentials.chainPem, basename(r.file)).map(parseCert);
    // The certificate first: a file cut short loses its key block too, and is unreadable.
    if (r.credentials.keyPem === "") return { kind, file: r.file, problem: "holds no private key" };
    return { kind, file: r.file, installed: { chain, keyPem: r.credentials.keyPem } };
  } catch (err) {
    return { kind, file: r.file, problem: (err as Error).message };
  }
}

/** Every kind of the role, in table order. */
export function readRole(role: Role, l: Layout): KindReading[] {
  return kindsFor(role).map((kind) => readInstalled(kind, l));
}

/** The installed certificate(s) of a CA, or undefined when missing or unreadable. */
export function readCaFile(ca: CaDescriptor, l: Layout): CertInfo[] | undefined {
  const path = join(l.pkiDir, ca.file);
  if (inspect(path).kind !== "file") return undefined;
  try {
    return splitPemCertificates(readNoFollow(path).toString("utf8"), ca.file).map(parseCert);
  } catch {
    return undefined;
  }
}

export interface CaReading {
  ca: CaDescriptor;
  /** The CA file, under the root. */
  file: string;
  /**
   * Every certificate in the file, in order: during a CA rotation it holds the old and the new CA.
   * Undefined when the file is missing or unreadable.
   */
  certs?: CertInfo[];
}

/** The CA files of the role, in table order (kubernetes, front-proxy, etcd). */
export function readRoleCas(role: Role, l: Layout): CaReading[] {
  return casFor(role).map((ca) => {
    const certs = readCaFile(ca, l);
    return { ca, file: join(l.pkiDir, ca.file), ...(certs ? { certs } : {}) };
  });
}

/**
 * A certificate's subject on one line, as Go's pkix.Name.String() prints it (RFC 4514: the most
 * specific RDN first, comma-separated); node:crypto gives one RDN a line, most general first, with
 * RFC 2253 escapes already applied.
 */
export function subjectLine(cert: CertInfo): string {
  return cert.node.subject.split("\n").reverse().join(",");
}

/** Whether the installed key belongs to the installed certificate. */
export function keyMatches(installed: Installed): boolean {
  try {
    return installed.chain[0]!.node.checkPrivateKey(createPrivateKey(installed.keyPem));
  } catch {
    return false;
  }
}

export function credentialsOf(installed: Installed): Credentials {
  return { chainPem: installed.chain.map((c) => c.pem).join(""), keyPem: installed.keyPem };
}
