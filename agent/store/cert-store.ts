// The contract between the certificate table and the disk: one strategy per kind of store
// (kubeadm's PKI pair, the kubelet's rotating store, a kubeconfig with embedded credentials), each
// knowing its paths, how to read what is installed, which files express new credentials and what a
// renewal leaves behind. After kubeadm's renewal/readwriter.go (one read/write strategy per kind of
// file). Nothing outside the strategies asks which store a kind uses.
import type { Layout } from "./layout.js";
import { SpecialFileError } from "./safe-read.js";
import type { FileChange } from "./transaction.js";

/** kubeadm's modes: certificates world-readable, keys (and files holding keys) owner-only. */
export const CERT_MODE = 0o644;
export const KEY_MODE = 0o600;

export interface Credentials {
  /** Leaf first, then intermediates. */
  chainPem: string;
  /** "" when a store read a certificate without its key (the reader reports which is at fault). */
  keyPem: string;
}

/** What a store holds for one kind, as PEM text (parsing is the PKI layer's job). */
export type StoredCredentials =
  | { ok: true; file: string; credentials: Credentials }
  | { ok: false; file: string; problem: string };

/** The kubeconfig a kind's credentials go into (kubeadm's kubeconfig specs). */
export interface KubeconfigTarget {
  /** The kubeconfig file. */
  path: string;
  server: string;
  caPem: string;
  /** The user name: the certificate's CN. */
  user: string;
}

export interface StoreWrite {
  layout: Layout;
  /** New credentials, or undefined when the installed ones are kept. */
  issued?: Credentials;
  /** The credentials valid for the kind after this run (issued or kept). */
  current: Credentials;
  /** Set for kinds with a kubeconfig. */
  kubeconfig?: KubeconfigTarget;
  now: Date;
}

export interface CertStore {
  /** The file `status` names for the kind. */
  file(l: Layout): string;
  read(l: Layout): StoredCredentials;
  /** The files that express the kind's credentials; the installer drops unchanged ones. */
  files(w: StoreWrite): FileChange[];
  /** Files a renewal leaves behind beyond the `keep` newest previous ones, to be removed. */
  leftovers(l: Layout, keep: number): string[];
  /**
   * Every file of the kind on disk now, the kind's kubeconfig (`kubeconfig`, where it has one)
   * included: what `leave` considers removing.
   */
  owned(l: Layout, kubeconfig?: string): string[];
}

/** Reads a store's files, turning any failure into the problem `status` and renewal report. */
export function readStored(file: string, read: () => Credentials | string): StoredCredentials {
  try {
    const r = read();
    return typeof r === "string"
      ? { ok: false, file, problem: r }
      : { ok: true, file, credentials: r };
  } catch (err) {
    // A FIFO or device where the credentials belong is not a certificate to replace: the host's
    // tree is at fault, and the run stops there (exit 6) rather than issue over it.
    if (err instanceof SpecialFileError) throw err;
    return { ok: false, file, problem: (err as Error).message };
  }
}
