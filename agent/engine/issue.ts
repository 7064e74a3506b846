// Reaching the CAs and issuing: the key is generated on this host, the CSR sent, and the answer
// verified before anyone uses it.
import type { CaBackend, Renewed, SignRequest } from "../ca/backend.js";
import { readCaInputs, requestedSansFor } from "../ca/index.js";
import { readProxyConfig, type CaSecrets } from "../ca/secrets.js";
import { trustedBundle } from "../ca/trust.js";
import { ATTEMPT_TIMEOUT_MS } from "../ca/common.js";
import { CaUnreachableError, RenewalRefusedError } from "../common/errors.js";
import type { Settings } from "../config/settings.js";
import { CAS, type CaName } from "../pki/cas.js";
import type { CertTemplate } from "../pki/certs.js";
import { buildCsr } from "../pki/csr.js";
import { credentialsOf, keyMatches, subjectLine, type Installed } from "../pki/installed.js";
import {
  generateKey,
  keyAlgorithmChange,
  loadKey,
  spkiDer,
  type KeyAlgorithm,
} from "../pki/keys.js";
import { verifyAnswer, type RequestedSans } from "../pki/verify.js";
import { certPin, type CertInfo } from "../pki/x509.js";
import type { Credentials } from "../store/cert-store.js";
import type { Assessment } from "./assess.js";
import { backendFor, type Runtime } from "./runtime.js";
import { settingsForSecrets } from "./tpm-identity.js";
import { lazyTpm, withTpmAuthKey, type TpmKeyWrite } from "./tpm-keys.js";
import { withTpmX5c } from "./tpm-x5c.js";

export interface ConnectedCa {
  backend: CaBackend;
  anchors: CertInfo[];
  /** The certificate that signs this CA's new leaves (CaBackend.currentSigner). */
  signer: CertInfo | undefined;
  /** What the server sent that no anchor names (CaBackend.offered): never trusted. */
  offered: CertInfo[];
  /** The SAN sets this CA is asked for (ca/index.ts requestedSansFor, as the assessment reads). */
  requestedSans: (template: CertTemplate) => RequestedSans[];
  /**
   * What this run put in the TPM or obtained for it (the auth key it imported, the X5C machine key
   * and certificate), written once the run succeeded (run.ts); asked for then.
   */
  tpmKeys?: () => TpmKeyWrite[];
}

export type Connected = Map<CaName, ConnectedCa>;

export interface ConnectOptions {
  deadline: number;
  renewal: boolean;
  /** By CA: the URL that answered last time (the state file), asked first. */
  preferred?: Readonly<Record<string, string>>;
  /** The CA certificates the node already holds (its installed bundle), kept while pinned. */
  known?: (ca: CaName) => CertInfo[] | undefined;
  /**
   * CAs contacted only to refresh their bundle (nothing of theirs is due): no secret is read for
   * them, and an unreachable one is a warning, left out of the result, never a failed run.
   */
  refreshOnly?: ReadonlySet<CaName>;
  /**
   * No secret is read for any CA (leave --revoke: a revocation authenticates otherwise, and the
   * enrolment secrets may be gone); unlike refreshOnly, an unreachable CA fails.
   */
  withoutSecrets?: boolean;
  /** The node's name: the subject of an X5C machine certificate in the TPM (tpm-x5c.ts). */
  nodeName?: string;
}

/**
 * Reaches every CA in turn and authenticates its certificate; nothing is sent to a CA that fails
 * its pin. Each CA's anchors are its trusted bundle (trustedBundle): what it sent, then the
 * installed certificates a pin still names. The secrets of all of them are read and checked
 * first: a missing, exposed or malformed one stops the run before any request.
 */
export async function connectCas(
  s: Settings,
  cas: CaName[],
  rt: Runtime,
  o: ConnectOptions,
): Promise<Connected> {
  const refreshOnly = (ca: CaName): boolean => o.refreshOnly?.has(ca) ?? false;
  const secrets = new Map<CaName, CaSecrets>(
    cas.map((ca) => [
      ca,
      refreshOnly(ca) || o.withoutSecrets
        ? {}
        : readCaInputs(CAS[ca], settingsForSecrets(s.cas[ca]), rt.env, {
            renewal: o.renewal,
            authKeyDropped: s.renew.authKey === "drop",
            now: rt.clock.now(),
          }),
    ]),
  );
  // Keys the TPM holds, or takes now (identity: tpm): still before any request.
  const tpm = lazyTpm(s.tpm.tcti, rt.tpm);
  const tpmWrites = new Map<CaName, () => TpmKeyWrite[]>();
  for (const ca of cas) {
    if (refreshOnly(ca) || o.withoutSecrets) continue;
    const held = await withTpmAuthKey(ca, s.cas[ca], secrets.get(ca)!, tpm, rt.layout);
    const x5c = await withTpmX5c(ca, s.cas[ca], held.secrets, tpm, rt.layout, {
      nodeName: o.nodeName ?? "",
      renewal: o.renewal,
    });
    secrets.set(ca, x5c.secrets);
    const { write } = held;
    if (write || x5c.writes)
      tpmWrites.set(ca, () => [...(write ? [write] : []), ...(x5c.writes?.() ?? [])]);
  }
  const proxy = readProxyConfig(s.proxy, rt.env);
  const out: Connected = new Map();
  for (const ca of cas) {
    const preferredUrl = o.preferred?.[ca];
    const backend = backendFor(rt, {
      ca: CAS[ca],
      settings: s.cas[ca],
      ...(preferredUrl !== undefined ? { preferredUrl } : {}),
      unsafeSkipCaVerification: s.unsafeSkipCaVerification,
      pinned: trustedBundle(s.cas[ca], [], o.known?.(ca) ?? []),
      secrets: secrets.get(ca)!,
      env: rt.env,
      ...(proxy ? { proxy } : {}),
      clock: rt.clock,
      // A refresh alone (nothing of this CA due) is not worth --timeout of waiting on every timer
      // run: retried for one attempt's ceiling, then the warning below.
      deadline: refreshOnly(ca)
        ? Math.min(o.deadline, rt.clock.now() + ATTEMPT_TIMEOUT_MS)
        : o.deadline,
      log: rt.log,
    });
    let fetched: CertInfo[];
    try {
      fetched = await backend.fetchCaBundle();
    } catch (err) {
      if (!(refreshOnly(ca) && err instanceof CaUnreachableError)) throw err;
      // Nothing of this CA is due: its installed bundle serves until the next run reaches it.
      rt.log(`WARNING: ${err.message}; kept the installed CA bundle (nothing of it is due)`);
      continue;
    }
    const anchors = trustedBundle(s.cas[ca], fetched, o.known?.(ca) ?? []);
    const offered = backend.offered?.() ?? [];
    for (const c of offered)
      rt.log(
        `WARNING: ${backend.description}: offers CA certificate "${subjectLine(c)}" (${certPin(c)}) that no anchor of this node names: not trusted, not installed (node-join trust list); a new CA of a rotation is trusted with node-join trust add --ca ${CAS[ca].display} --ca-cert-hash ${certPin(c)} once that pin is checked with the CA's operator`,
      );
    out.set(ca, {
      backend,
      anchors,
      signer: backend.currentSigner?.() ?? anchors[0],
      offered,
      requestedSans: (t) => requestedSansFor(s.cas[ca].type, t),
      ...(tpmWrites.has(ca) ? { tpmKeys: tpmWrites.get(ca)! } : {}),
    });
  }
  return out;
}

/** By CA: the URL of the server that last answered this run, for the state file. */
export function answeredUrls(connected: Connected): Map<CaName, string> {
  const out = new Map<CaName, string>();
  for (const [ca, c] of connected) {
    const url = c.backend.answered?.();
    if (url !== undefined) out.set(ca, url);
  }
  return out;
}

/** The CAs of these kinds, in table order. */
export function casOf(kinds: { ca: CaName }[]): CaName[] {
  return [...new Set(kinds.map((k) => k.ca))];
}

export interface Issued {
  kind: string;
  ca: CaName;
  credentials: Credentials;
  leaf: CertInfo;
  /** How it was issued when that is worth a word (Renewed.note). */
  note?: string;
}

export interface IssueOptions {
  algorithm: KeyAlgorithm;
  /** Renewal: keep the installed key (renew.reuseKey). */
  reuseKey: boolean;
  /**
   * Renewal: let a CA with a renewal path (step-ca) authenticate with the installed credentials.
   */
  renewWithInstalled: boolean;
}

/** What renewOrEnrol reads of the assessment (engine/assess.ts). */
export type RenewVerdict = Pick<Assessment, "cause" | "reason" | "renewable" | "expired">;

/** Enrols `req` in place of a renewal given up on for `why`, where the backend can. */
async function enrolAgain(
  backend: CaBackend,
  req: SignRequest,
  why: string,
  log: (line: string) => void,
): Promise<Renewed> {
  const refusal = backend.cannotEnrol?.(req, why);
  if (refusal) throw refusal;
  log(`${backend.description}: ${why}: enrolling ${req.kind} again`);
  return { chainPem: await backend.sign(req), keptCurrentKey: false };
}

/**
 * The one choice between renewal and enrolment (kubeadm's renewal Manager decides, the CA client
 * carries out, as smallstep's `step ca renew` over its ca.Client). With the installed credentials
 * (`installed`: renew, its key matching) and a CA that renews with them, a certificate the
 * assessment finds renewable is renewed; one that is not (another CA's, or one whose names must
 * change: a renewal keeps the old subject and SANs), or one the CA refuses to renew in a way an
 * enrolment can mend (RenewalRefusedError: expired), is enrolled again where an enrolment secret
 * is configured. Otherwise, and on join, the CSR is signed.
 */
export async function renewOrEnrol(
  backend: CaBackend,
  req: SignRequest,
  installed: Installed | undefined,
  verdict: RenewVerdict,
  log: (line: string) => void,
): Promise<Renewed> {
  if (!installed || !backend.renew)
    return { chainPem: await backend.sign(req), keptCurrentKey: false };
  if (!verdict.renewable) {
    const leaf = installed.chain[0]!;
    const why =
      verdict.cause === "chain"
        ? `${req.kind} was not issued by this CA (issuer "${leaf.issuerCommonName}")`
        : `${req.kind} must change (${verdict.reason ?? verdict.cause}) and renewal keeps the old subject and SANs`;
    return enrolAgain(backend, req, why, log);
  }
  const { chainPem, keyPem } = credentialsOf(installed);
  try {
    return await backend.renew({
      ...req,
      currentCertPem: chainPem,
      currentKeyPem: keyPem,
      expired: verdict.expired,
    });
  } catch (err) {
    if (err instanceof RenewalRefusedError) return enrolAgain(backend, req, err.why, log);
    throw err;
  }
}

async function issue(
  a: Assessment,
  ca: ConnectedCa,
  o: IssueOptions,
  now: Date,
  log: (line: string) => void,
): Promise<Issued> {
  const usable =
    a.reading.installed && keyMatches(a.reading.installed) ? a.reading.installed : undefined;
  // renew.reuseKey keeps the key only while it is of the configured algorithm.
  const reusable = usable && !keyAlgorithmChange(usable.keyPem, o.algorithm) ? usable : undefined;
  const key = o.reuseKey && reusable ? loadKey(reusable.keyPem) : await generateKey(o.algorithm);
  const csrPem = await buildCsr(a.template, key);
  const req = { kind: a.kind.name, profile: a.kind.profile, csrPem, template: a.template };
  const from = o.renewWithInstalled ? usable : undefined;
  const answer = await renewOrEnrol(ca.backend, req, from, a, log);
  // A renewal that certified the installed key (step-ca's token renewal) keeps that key.
  const certified = answer.keptCurrentKey && from ? loadKey(from.keyPem) : key;
  const { chainPem } = answer;
  // Exactly what this backend asked the CA for, and a path that RFC 5280 validation accepts.
  const verified = await verifyAnswer({
    kind: a.kind.name,
    ca: ca.backend.description,
    chainPem,
    expectedSpki: spkiDer(certified.privateKey),
    anchors: ca.anchors,
    template: a.template,
    requestedSans: ca.requestedSans(a.template),
    now,
  });
  return {
    kind: a.kind.name,
    ca: a.kind.ca,
    credentials: { chainPem: verified.chain.map((c) => c.pem).join(""), keyPem: certified.pem },
    leaf: verified.leaf,
    ...(answer.note ? { note: answer.note } : {}),
  };
}

/**
 * Every CA checks that it can authorize its requests (step-ca: a one-time token for each, or the
 * provisioner key decrypted with the password), sending no CSR and spending no token.
 */
export async function prepareAll(toIssue: Assessment[], connected: Connected): Promise<void> {
  for (const [ca, conn] of connected) {
    const mine = toIssue.filter((a) => a.kind.ca === ca);
    await conn.backend.prepare?.(mine.map((a) => ({ kind: a.kind.name, template: a.template })));
  }
}

/**
 * Issues every kind: one CA after the other in table order (kubernetes, front-proxy, etcd), the
 * kinds of one CA concurrently (key generation and signing overlap). Any failure rejects the whole
 * set before anything is written. For an enrolment every CA first checks that it can authorize its
 * requests, so a failure spends no one-time token (step-ca); a renewal authenticates with the
 * installed certificate, and enrolment secrets are needed only where renewOrEnrol enrols again.
 */
export async function issueAll(
  toIssue: Assessment[],
  connected: Connected,
  o: IssueOptions,
  rt: Runtime,
): Promise<Map<string, Issued>> {
  if (!o.renewWithInstalled) await prepareAll(toIssue, connected);
  const issued = new Map<string, Issued>();
  for (const ca of casOf(toIssue.map((a) => a.kind))) {
    const conn = connected.get(ca)!;
    const results = await Promise.allSettled(
      toIssue
        .filter((a) => a.kind.ca === ca)
        .map((a) => {
          rt.log(
            `requesting ${a.kind.name} (CN=${a.template.commonName}) from ${conn.backend.description}`,
          );
          return issue(a, conn, o, new Date(rt.clock.now()), rt.log);
        }),
    );
    // The first failure in table order is the one reported, whatever finished first.
    for (const r of results) {
      if (r.status === "rejected") throw r.reason;
      issued.set(r.value.kind, r.value);
    }
  }
  return issued;
}
