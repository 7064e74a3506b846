// Reads and lays out the files of each kind of the certificate table: kubeadm's pki files, the
// kubelet's rotation store, and kubeconfigs with embedded credentials.
import { readdirSync } from "node:fs";
import { basename, join, relative } from "node:path";
import type { CaKind, CertKind, TableContext } from "../pki/certs.js";
import { inspect, readNoFollow } from "./fsio.js";
import type { FileChange } from "./transaction.js";
import { renderKubeconfig, parseKubeconfig } from "./kubeconfig.js";
import type { Layout } from "./layout.js";
import { parseCert, splitPemCertificates, type CertInfo } from "../pki/x509.js";

export const CERT_MODE = 0o644;
export const KEY_MODE = 0o600;

export interface Installed {
  /** File `status` names for this kind. */
  file: string;
  chain: CertInfo[];
  keyPem: string;
}

export type InstalledResult = { ok: true; value: Installed } | { ok: false; file: string; problem: string };

export function certFile(kind: CertKind, l: Layout): string {
  switch (kind.store.type) {
    case "pki":
      return join(l.pkiDir, kind.store.cert);
    case "kubelet":
      return join(l.kubeletPkiDir, `${kind.store.prefix}-current.pem`);
    case "embedded":
      return join(l.kubernetesDir, kind.kubeconfig!.file);
  }
}

const KEY_BLOCK = /-----BEGIN (RSA |EC )?PRIVATE KEY-----[\s\S]*?-----END \1?PRIVATE KEY-----\n?/;

function splitChainAndKey(text: string): { chainPem: string; keyPem: string } | undefined {
  const key = KEY_BLOCK.exec(text);
  if (!key) return undefined;
  return { chainPem: text.replace(key[0], ""), keyPem: key[0].endsWith("\n") ? key[0] : `${key[0]}\n` };
}

/** The installed certificate and key of a kind, or what is wrong with them. */
export function readInstalled(kind: CertKind, l: Layout): InstalledResult {
  const file = certFile(kind, l);
  const fail = (problem: string): InstalledResult => ({ ok: false, file, problem });
  try {
    let chainPem: string;
    let keyPem: string;
    if (kind.store.type === "pki") {
      const c = inspect(file);
      if (c.kind === "missing") return fail("missing");
      chainPem = readNoFollow(file).toString("utf8");
      const keyPath = join(l.pkiDir, kind.store.key);
      if (inspect(keyPath).kind === "missing") return fail(`key ${basename(keyPath)} missing`);
      keyPem = readNoFollow(keyPath).toString("utf8");
    } else if (kind.store.type === "kubelet") {
      const link = inspect(file);
      if (link.kind === "missing") return fail("missing");
      if (link.kind === "symlink" && inspect(join(l.kubeletPkiDir, basename(link.target!))).kind === "missing") {
        return fail(`dangling symlink to ${link.target}`);
      }
      const parts = splitChainAndKey(readPem(file));
      if (!parts) return fail("holds no private key");
      ({ chainPem, keyPem } = parts);
    } else {
      if (inspect(file).kind === "missing") return fail("missing");
      const kc = parseKubeconfig(readNoFollow(file).toString("utf8"));
      if (!kc.certData || !kc.keyData) return fail("holds no embedded client certificate");
      chainPem = kc.certData;
      keyPem = kc.keyData;
    }
    const chain = splitPemCertificates(chainPem, basename(file)).map(parseCert);
    return { ok: true, value: { file, chain, keyPem } };
  } catch (err) {
    return fail((err as Error).message);
  }
}

/** Reads the kubelet's -current.pem through its own symlink (resolved inside the store, also under --root). */
function readPem(file: string): string {
  const link = inspect(file);
  if (link.kind === "symlink") return readNoFollow(join(file, "..", basename(link.target!))).toString("utf8");
  return readNoFollow(file).toString("utf8");
}

export function readCaFile(ca: CaKind, l: Layout): CertInfo[] | undefined {
  const path = join(l.pkiDir, ca.file);
  if (inspect(path).kind !== "file") return undefined;
  try {
    return splitPemCertificates(readNoFollow(path).toString("utf8"), ca.file).map(parseCert);
  } catch {
    return undefined;
  }
}

export interface Credentials {
  chainPem: string;
  keyPem: string;
}

/** kubelet rotation file name: <prefix>-YYYY-MM-DD-HH-MM-SS.pem, unique within the store. */
export function kubeletFileName(prefix: string, now: Date, exists: (name: string) => boolean): string {
  for (let t = now.getTime(); ; t += 1000) {
    const d = new Date(t).toISOString();
    const name = `${prefix}-${d.slice(0, 10)}-${d.slice(11, 13)}-${d.slice(14, 16)}-${d.slice(17, 19)}.pem`;
    if (!exists(name)) return name;
  }
}

export interface LayoutInput {
  kind: CertKind;
  /** New credentials, or undefined when the installed ones are kept. */
  issued?: Credentials;
  /** Credentials now valid for this kind (issued or kept), for kubeconfigs. */
  current: Credentials;
  caPem: string;
  ctx: TableContext;
  l: Layout;
  now: Date;
}

/** The files that express one kind's credentials (unchanged ones are filtered by the installer). */
export function filesFor(input: LayoutInput): FileChange[] {
  const { kind, issued, l } = input;
  const out: FileChange[] = [];
  if (kind.store.type === "pki") {
    out.push({ path: join(l.pkiDir, kind.store.cert), content: input.current.chainPem, mode: CERT_MODE });
    out.push({ path: join(l.pkiDir, kind.store.key), content: input.current.keyPem, mode: KEY_MODE });
  } else if (kind.store.type === "kubelet" && issued) {
    const prefix = kind.store.prefix;
    const name = kubeletFileName(prefix, input.now, (n) => inspect(join(l.kubeletPkiDir, n)).kind !== "missing");
    out.push({ path: join(l.kubeletPkiDir, name), content: issued.chainPem + issued.keyPem, mode: KEY_MODE });
    // A bare file name as target resolves both under --root and on the booted host.
    out.push({ path: join(l.kubeletPkiDir, `${prefix}-current.pem`), symlink: name });
  }
  if (kind.kubeconfig) {
    const spec = kind.kubeconfig;
    const cp = input.ctx.controlPlane;
    const server = spec.server === "local" && cp ? `https://${bracket(cp.advertiseAddress)}:${cp.bindPort}` : input.ctx.apiServer;
    const path = join(l.kubernetesDir, spec.file);
    const user = kind.commonName(input.ctx);
    let credentials;
    if (spec.embed) {
      credentials = { embedded: true as const, certPem: input.current.chainPem, keyPem: input.current.keyPem };
    } else {
      const pem = join(l.kubeletPkiDir, `${(kind.store as { prefix: string }).prefix}-current.pem`);
      // On / the path is kubeadm's absolute one; under --root it is relative to the kubeconfig,
      // which client-go resolves the same way on the booted host.
      const ref = l.root === "/" ? pem : relative(l.kubernetesDir, pem);
      credentials = { embedded: false as const, certFile: ref, keyFile: ref };
    }
    out.push({ path, content: renderKubeconfig({ server, caPem: input.caPem, user, credentials }), mode: KEY_MODE });
  }
  return out;
}

function bracket(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Timestamped kubelet files beyond the current one and the `keep` newest previous ones. */
export function oldKubeletFiles(dir: string, prefix: string, keep: number): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const link = inspect(join(dir, `${prefix}-current.pem`));
  const current = link.kind === "symlink" ? basename(link.target!) : undefined;
  const stamped = names
    .filter((n) => new RegExp(`^${prefix}-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}\\.pem$`).test(n) && n !== current)
    .sort();
  return stamped.slice(0, Math.max(0, stamped.length - keep)).map((n) => join(dir, n));
}

/**
 * A KubeletConfiguration drop-in that points the kubelet's serving TLS at node-join's rotating file
 * (without it the kubelet makes a self-signed kubelet.crt). Read when the kubelet runs with
 * --config-dir=/etc/kubernetes/kubelet.conf.d; otherwise merge the two fields into its config.yaml.
 */
export function kubeletServingDropin(l: Layout): FileChange {
  const pem = "/var/lib/kubelet/pki/kubelet-server-current.pem";
  return {
    path: join(l.kubernetesDir, "kubelet.conf.d", "50-node-join-serving.conf"),
    content: `# Written by node-join: serve the kubelet API with the CA-signed certificate node-join renews.
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
serverTLSBootstrap: false
tlsCertFile: ${pem}
tlsPrivateKeyFile: ${pem}
`,
    mode: CERT_MODE,
  };
}
