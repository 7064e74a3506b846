// The steps every command shares, driven by the certificate table: resolve the node's identity,
// reach and authenticate the CAs, decide per kind what to do, issue and verify, lay out the files.
import { createPrivateKey, createPublicKey } from "node:crypto";
import { join } from "node:path";
import { createBackend } from "../ca/index.js";
import type { CaBackend } from "../ca/backend.js";
import {
  caKindsFor, endpointHost, templateFor, type CaName, type CertKind, type CertTemplate, type ControlPlaneSettings,
  type TableContext,
} from "../pki/certs.js";
import { buildCsr } from "../pki/csr.js";
import { discover, type Discovered } from "../ops/discover.js";
import { UsageError, VerificationError } from "../common/errors.js";
import { assertNoSymlinkedDirs, inspect, readNoFollow } from "../store/fsio.js";
import { recover, type FileChange } from "../store/transaction.js";
import { restorePausedManifests } from "../ops/static-pods.js";
import { generateKey, loadKey, spkiDer, type KeyAlgorithm, type NodeKey } from "../pki/keys.js";
import { managedDirs, type Layout } from "../store/layout.js";
import type { Clock } from "../ca/retry.js";
import type { Settings } from "../config/settings.js";
import { CERT_MODE, KEY_MODE, filesFor, readInstalled, type Credentials, type Installed } from "../store/stores.js";
import { verifyIssued } from "../pki/verify.js";
import type { CertInfo } from "../pki/x509.js";

export interface Runtime {
  layout: Layout;
  env: NodeJS.ProcessEnv;
  clock: Clock;
  /** Progress and warnings (stderr); never secrets. */
  log: (line: string) => void;
}

/** `fast`: read interface state from sysfs instead of systeminformation (renew runs twice a day). */
export async function resolveIdentity(s: Settings, opts: { fast?: boolean } = {}): Promise<Discovered> {
  return discover({
    inventory: opts.fast ? "sysfs" : "systeminformation",
    ...(s.nodeName ? { nodeName: s.nodeName } : {}),
    ips: s.ips,
    dnsNames: s.dnsNames,
    ...(s.interface ? { interface: s.interface } : {}),
  });
}

export function tableContext(s: Settings, id: Discovered): TableContext {
  const ctx: TableContext = { node: { nodeName: id.nodeName, ips: id.ips, dnsNames: id.dnsNames }, apiServer: s.apiServer };
  if (s.role === "control-plane") {
    const c = s.controlPlane!;
    const advertiseAddress = c.advertiseAddress ?? id.ips[0];
    if (!advertiseAddress) throw new UsageError("--advertise-address is required: no node IP was discovered");
    let endpoint = c.endpoint;
    if (!endpoint && s.apiServer) {
      const u = new URL(s.apiServer);
      endpoint = `${u.hostname}:${u.port || "443"}`;
    }
    if (!endpoint) throw new UsageError("--control-plane-endpoint or --api-server is required for role control-plane");
    const cp: ControlPlaneSettings = {
      advertiseAddress,
      bindPort: c.bindPort ?? 6443,
      endpoint,
      serviceCidr: c.serviceCidr ?? "10.96.0.0/12",
      dnsDomain: c.dnsDomain ?? "cluster.local",
      apiServerCertSans: c.apiServerCertSans ?? [],
      etcdServerCertSans: c.etcdServerCertSans ?? [],
      etcdPeerCertSans: c.etcdPeerCertSans ?? [],
    };
    endpointHost(cp.endpoint);
    ctx.controlPlane = cp;
  }
  return ctx;
}

/** Before taking the lock: every directory node-join writes in is a real directory, not a planted link. */
export function checkWriteTargets(l: Layout): void {
  for (const dir of [...managedDirs(l), l.backupDir, l.systemdDir, l.cronDir]) assertNoSymlinkedDirs(l.root, dir);
}

/** Under the lock, before any command writes: finish or undo what a killed run left behind. */
export function recoverInterrupted(rt: Runtime): void {
  const rec = recover(rt.layout);
  const restored = restorePausedManifests(rt.layout);
  if (rec.rolledForward || rec.removed.length || restored.length) {
    rt.log(`recovered an interrupted run: ${rec.rolledForward} file(s) completed, ${rec.removed.length} leftover(s) removed, ${restored.length} static pod manifest(s) restored`);
  }
}

export function casOf(kinds: CertKind[]): CaName[] {
  return [...new Set(kinds.map((k) => k.ca))];
}

export interface ConnectedCa {
  backend: CaBackend;
  anchors: CertInfo[];
}

/** Reaches every CA in turn and authenticates its certificate; nothing is sent to a CA that fails its pin. */
export async function connectCas(s: Settings, cas: CaName[], rt: Runtime, deadline: number): Promise<Map<CaName, ConnectedCa>> {
  const out = new Map<CaName, ConnectedCa>();
  for (const ca of cas) {
    const backend = createBackend({
      caName: ca,
      settings: s.cas[ca],
      unsafeSkipCaVerification: s.unsafeSkipCaVerification,
      env: rt.env,
      clock: rt.clock,
      deadline,
      log: rt.log,
    });
    const anchors = await backend.fetchCaBundle();
    out.set(ca, { backend, anchors });
  }
  return out;
}

export interface KindState {
  kind: CertKind;
  template: CertTemplate;
  installed?: Installed;
  /** Why the kind must be (re)issued; undefined: keep what is installed. */
  reason?: string;
}

/** Whether the installed key belongs to the installed certificate. */
export function keyMatches(installed: Installed): boolean {
  try {
    return installed.chain[0]!.node.checkPrivateKey(createPrivateKey(installed.keyPem));
  } catch {
    return false;
  }
}

export interface IssueInput {
  state: KindState;
  ca: ConnectedCa;
  algorithm: KeyAlgorithm;
  /** Reuse this key instead of generating one (renew.reuseKey). */
  reuseKeyPem?: string;
  /** The installed credentials, for CAs that renew by authenticating with them (step-ca). */
  renewFrom?: Credentials;
  now: Date;
}

export interface Issued {
  kind: CertKind;
  credentials: Credentials;
  leaf: CertInfo;
}

/** Generates the key on this host, sends the CSR, and verifies the answer before anyone uses it. */
export async function issue(input: IssueInput): Promise<Issued> {
  const { state, ca } = input;
  const key: NodeKey = input.reuseKeyPem ? loadKey(input.reuseKeyPem) : await generateKey(input.algorithm);
  const csrPem = await buildCsr(state.template, key);
  const req = { kind: state.kind.name, profile: state.kind.profile, csrPem, template: state.template };
  const from = input.renewFrom;
  const chainPem = from && ca.backend.renew
    ? await ca.backend.renew({ ...req, currentCertPem: from.chainPem, currentKeyPem: from.keyPem })
    : await ca.backend.sign(req);
  const verified = verifyIssued({
    kind: state.kind.name,
    ca: ca.backend.description,
    chainPem,
    expectedSpki: spkiDer(key.privateKey),
    anchors: ca.anchors,
    template: state.template,
    now: input.now,
  });
  return {
    kind: state.kind,
    credentials: { chainPem: verified.chain.map((c) => c.pem).join(""), keyPem: key.pem },
    leaf: verified.leaf,
  };
}

/**
 * Issues every kind: one CA after the other in table order (kubernetes, front-proxy, etcd), the
 * kinds of one CA concurrently (key generation and signing overlap). Any failure rejects the whole
 * set before anything is written.
 */
export async function issueAll(
  states: KindState[],
  connected: Map<CaName, ConnectedCa>,
  algorithm: KeyAlgorithm,
  rt: Runtime,
  now: () => Date,
  reuseKey?: (st: KindState) => string | undefined,
  renewFrom?: (st: KindState) => Credentials | undefined,
): Promise<Map<string, Issued>> {
  const issued = new Map<string, Issued>();
  for (const ca of [...new Set(states.map((st) => st.kind.ca))]) {
    const group = states.filter((st) => st.kind.ca === ca);
    const conn = connected.get(ca)!;
    const results = await Promise.allSettled(
      group.map((st) => {
        rt.log(`requesting ${st.kind.name} (CN=${st.template.commonName}) from ${conn.backend.description}`);
        const reuse = reuseKey?.(st);
        const from = renewFrom?.(st);
        return issue({ state: st, ca: conn, algorithm, now: now(), ...(reuse ? { reuseKeyPem: reuse } : {}), ...(from ? { renewFrom: from } : {}) });
      }),
    );
    // The first failure in table order is the one reported, whatever finished first.
    for (const r of results) {
      if (r.status === "rejected") throw r.reason;
      issued.set(r.value.kind.name, r.value);
    }
  }
  return issued;
}

export function kindStates(kinds: CertKind[], ctx: TableContext, l: Layout): KindState[] {
  return kinds.map((kind) => {
    const template = templateFor(kind, ctx);
    const r = readInstalled(kind, l);
    return r.ok ? { kind, template, installed: r.value } : { kind, template, reason: r.problem };
  });
}

/** The CA certificate files of a role for the CAs in `anchors` (no keys, ever). */
export function caFiles(role: Settings["role"], anchors: Map<CaName, CertInfo[]>, l: Layout): FileChange[] {
  return caKindsFor(role).filter((ca) => anchors.has(ca.ca)).map((ca) => ({
    path: join(l.pkiDir, ca.file),
    content: anchors.get(ca.ca)!.map((c) => c.pem).join(""),
    mode: CERT_MODE,
  }));
}

/** The cluster's shared service-account key pair, from the operator's files, checked to match. */
export function serviceAccountFiles(s: Settings, l: Layout): FileChange[] {
  const cp = s.controlPlane!;
  const keyFile = cp.serviceAccountKeyFile;
  const pubFile = cp.serviceAccountPublicKeyFile;
  const read = (f: string, what: string): Buffer => {
    if (inspect(f).kind === "missing") {
      throw new UsageError(`${what} ${f} is missing: every control-plane node needs the cluster's one shared sa.key/sa.pub pair (write it with cloud-init write_files, or set --sa-key-file/--sa-pub-file)`);
    }
    return readNoFollow(f);
  };
  const keyPem = read(keyFile, "service-account key");
  const pubPem = read(pubFile, "service-account public key");
  let matches: boolean;
  try {
    const fromKey = createPublicKey(keyPem).export({ format: "der", type: "spki" });
    const pub = createPublicKey(pubPem).export({ format: "der", type: "spki" });
    matches = fromKey.equals(pub);
  } catch (err) {
    throw new UsageError(`service-account key pair ${keyFile} / ${pubFile}: not a PEM key (${(err as Error).message})`);
  }
  if (!matches) throw new VerificationError(`service-account key pair does not match: ${pubFile} is not the public half of ${keyFile}`);
  return [
    { path: join(l.pkiDir, "sa.key"), content: keyPem, mode: KEY_MODE },
    { path: join(l.pkiDir, "sa.pub"), content: pubPem, mode: CERT_MODE },
  ];
}

export function credentialsOf(installed: Installed): Credentials {
  return { chainPem: installed.chain.map((c) => c.pem).join(""), keyPem: installed.keyPem };
}

/** Files for every kind: newly issued credentials where given, the installed ones otherwise. */
export function kindFiles(states: KindState[], issued: Map<string, Issued>, caPem: Map<CaName, string>, ctx: TableContext, l: Layout, now: Date): FileChange[] {
  return states.flatMap((st) => {
    const fresh = issued.get(st.kind.name);
    const current = fresh?.credentials ?? (st.installed ? credentialsOf(st.installed) : undefined);
    if (!current) return [];
    return filesFor({ kind: st.kind, ...(fresh ? { issued: fresh.credentials } : {}), current, caPem: caPem.get(st.kind.ca)!, ctx, l, now });
  });
}
