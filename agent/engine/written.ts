// The files node-join writes for a role, derived from the certificate table (each kind the role
// needs, its store's files and kubeconfig), the role's CA certificates and the layout: what
// `leave`, and the recovery of an interrupted leave, may remove. A state file's or a journal's
// word adds nothing to it: a record naming an operator's file (admin.conf on a worker, a CA key)
// must not make node-join remove it.
import { join } from "node:path";
import { timerFiles } from "../ops/timer.js";
import { casFor } from "../pki/cas.js";
import { kindsFor, type CertKind } from "../pki/certs.js";
import type { Role } from "../pki/roles.js";
import { kubeletServingDropin } from "../store/kubelet-store.js";
import type { Layout } from "../store/layout.js";
import { serviceAccountPaths } from "./files.js";

/** A file node-join writes, and what it is. */
export interface Written {
  path: string;
  what: string;
  /** Set for a kind's own files (its store's and its kubeconfig). */
  kind?: CertKind;
}

/**
 * Every file node-join writes for `role` that is on disk now, in the order leave removes them:
 * `more` (leave's metrics textfile) goes before the config and the state, which come last: an
 * interrupted leave is finished by the next run that reads the config.
 */
export function writtenFor(role: Role, l: Layout, more: Written[] = []): Written[] {
  const out: Written[] = [];
  for (const kind of kindsFor(role)) {
    const kubeconfig = kind.kubeconfig && join(l.kubernetesDir, kind.kubeconfig.file);
    for (const path of kind.store.owned(l, kubeconfig))
      out.push({ path, what: `certificate ${kind.name}`, kind });
  }
  for (const ca of casFor(role))
    out.push({ path: join(l.pkiDir, ca.file), what: `CA ${ca.display} certificate` });
  if (role === "control-plane")
    for (const path of serviceAccountPaths(l)) out.push({ path, what: "service-account key pair" });
  out.push({ path: kubeletServingDropin(l).path, what: "kubelet drop-in" });
  for (const path of timerFiles(l)) out.push({ path, what: "renewal timer" });
  out.push(...more);
  out.push({ path: l.configFile, what: "config" });
  out.push({ path: l.stateFile, what: "state" });
  const seen = new Set<string>();
  return out.filter((w) => !seen.has(w.path) && seen.add(w.path));
}

/** Why leave keeps a file a record names that is none of these. */
export const notWrittenFor = (role: Role): string => `not a file node-join writes for a ${role}`;
