// The files a run installs, computed before anything is written: the CA certificates, every
// kind's store files and kubeconfigs, and the cluster's shared service-account pair.
import { createPublicKey } from "node:crypto";
import { join } from "node:path";
import { UsageError, VerificationError } from "../common/errors.js";
import type { Settings } from "../config/settings.js";
import { casFor, type CaName } from "../pki/cas.js";
import { kubeconfigServer, type TableContext } from "../pki/certs.js";
import { credentialsOf } from "../pki/installed.js";
import type { Role } from "../pki/roles.js";
import type { CertInfo } from "../pki/x509.js";
import { CERT_MODE, KEY_MODE, type Credentials } from "../store/cert-store.js";
import { inspect, readNoFollow } from "../store/fsio.js";
import type { Layout } from "../store/layout.js";
import { readTrustedFile } from "../store/strict-modes.js";
import type { FileChange } from "../store/transaction.js";
import type { Assessment } from "./assess.js";

/** The CA certificate files of a role for the CAs in `anchors` (no keys, ever). */
export function caFiles(role: Role, anchors: Map<CaName, CertInfo[]>, l: Layout): FileChange[] {
  return casFor(role)
    .filter((ca) => anchors.has(ca.name))
    .map((ca) => ({
      path: join(l.pkiDir, ca.file),
      content: anchors
        .get(ca.name)!
        .map((c) => c.pem)
        .join(""),
      mode: CERT_MODE,
    }));
}

/** Files for every kind: newly issued credentials where given, the installed ones otherwise. */
export function kindFiles(
  all: Assessment[],
  issued: ReadonlyMap<string, Credentials>,
  caPem: Map<CaName, string>,
  ctx: TableContext,
  l: Layout,
  now: Date,
): FileChange[] {
  return all.flatMap((a) => {
    const fresh = issued.get(a.kind.name);
    const current = fresh ?? (a.reading.installed ? credentialsOf(a.reading.installed) : undefined);
    const ca = caPem.get(a.kind.ca);
    // A kept kind whose CA certificate is unknown this run has nothing to rewrite.
    if (!current || ca === undefined) return [];
    const spec = a.kind.kubeconfig;
    const kubeconfig = spec && {
      path: join(l.kubernetesDir, spec.file),
      server: kubeconfigServer(spec, ctx),
      caPem: ca,
      user: a.template.commonName,
    };
    return a.kind.store.files({
      layout: l,
      ...(fresh ? { issued: fresh } : {}),
      current,
      ...(kubeconfig ? { kubeconfig } : {}),
      now,
    });
  });
}

/** The cluster's shared service-account key pair, from the operator's files, checked to match. */
export function serviceAccountFiles(s: Settings, l: Layout): FileChange[] {
  const cp = s.controlPlane!;
  const keyFile = cp.serviceAccountKeyFile;
  const pubFile = cp.serviceAccountPublicKeyFile;
  const read = (f: string, what: string, secret: boolean): Buffer => {
    if (inspect(f).kind === "missing") {
      throw new UsageError(
        `${what} ${f} is missing: every control-plane node needs the cluster's one shared sa.key/sa.pub pair (write it with cloud-init write_files, or set --sa-key-file/--sa-pub-file)`,
      );
    }
    // The key signs every service-account token of the cluster: a copy others can read, or a file
    // another user can swap, is refused like any other secret. The public half is checked below
    // to belong to it.
    return secret ? readTrustedFile(f, what, "secret", { noFollow: true }) : readNoFollow(f);
  };
  const keyPem = read(keyFile, "service-account key", true);
  const pubPem = read(pubFile, "service-account public key", false);
  let matches: boolean;
  try {
    const fromKey = createPublicKey(keyPem).export({ format: "der", type: "spki" });
    const pub = createPublicKey(pubPem).export({ format: "der", type: "spki" });
    matches = fromKey.equals(pub);
  } catch (err) {
    throw new UsageError(
      `service-account key pair ${keyFile} / ${pubFile}: not a PEM key (${(err as Error).message})`,
    );
  }
  if (!matches)
    throw new VerificationError(
      `service-account key pair does not match: ${pubFile} is not the public half of ${keyFile}`,
    );
  const [key, pub] = serviceAccountPaths(l);
  return [
    { path: key, content: keyPem, mode: KEY_MODE },
    { path: pub, content: pubPem, mode: CERT_MODE },
  ];
}

/** Where a control plane's copy of the service-account pair lives: kubeadm's sa.key and sa.pub. */
export function serviceAccountPaths(l: Layout): [string, string] {
  return [join(l.pkiDir, "sa.key"), join(l.pkiDir, "sa.pub")];
}
