// Enrolment at step-ca's /1.0/sign (smallstep/certificates api/sign.go) with a one-time token per
// certificate: given (tokens.ts), minted here with the JWK provisioner's key (provisioners.ts), or
// signed with the node's machine certificate for an X5C provisioner (x5c.ts).
import { CaRefusedError, UsageError } from "../../common/errors.js";
import { certFingerprint, parseCert, splitPemCertificates, type CertInfo } from "../../pki/x509.js";
import type { PlannedRequest, SignRequest } from "../backend.js";
import {
  secretEnvName,
  type SecretKind,
  type TpmX5cIdentity,
  type X5cCredential,
} from "../secrets.js";
import { signX5cToken } from "../x5c.js";
import { chainOf, type Connection, type StepCaClient } from "./client.js";
import {
  decryptKey,
  jwkProvisionersOf,
  listProvisioners,
  mintToken,
  TOKEN_LIFETIME_S,
  type JwkProvisioner,
  type ProvisionerKey,
} from "./provisioners.js";
import { tokenSans } from "./sans.js";
import { describeTemplate, parseTokenList, pickProvisioner, TokenPool } from "./tokens.js";
import {
  checkX5cRoots,
  X5C_KEY_SECRET,
  x5cProvisionersOf,
  x5cRefusedMessage,
  x5cSignToken,
  type X5cProvisioner,
} from "./x5c.js";
import {
  machineCsr,
  machineRenewalDue,
  machineRequest,
  tpmCredential,
  tpmSigner,
} from "./x5c-tpm.js";
import { renewToken } from "./renew.js";
import { spkiDer } from "../../pki/keys.js";

/**
 * step-ca's enrolment secrets: the JWK provisioner's password (node-join mints the tokens),
 * one-time tokens minted elsewhere, and the machine key of X5C enrolment. A renewal authenticates
 * with the installed certificate.
 */
export const STEPCA_SECRETS: readonly SecretKind[] = [
  {
    setting: "passwordFile",
    what: "step-ca provisioner password file",
    flag: "ca-password-file",
    envName: (ca) => secretEnvName(ca, "PASSWORD"),
    enrolmentOnly: true,
  },
  {
    setting: "tokenFile",
    what: "step-ca token file",
    flag: "ca-token-file",
    envName: (ca) => secretEnvName(ca, "TOKEN"),
    enrolmentOnly: true,
    check: (v, source) => {
      try {
        parseTokenList(v, source);
        return undefined;
      } catch (err) {
        return `is unusable: ${(err as Error).message}`;
      }
    },
  },
  X5C_KEY_SECRET,
];

export function tokenRefusedMessage(source: string, caUrl: string): string {
  return (
    `${source} was refused (HTTP 401; step-ca logs the reason but does not send it). Usual causes: ` +
    "a wrong provisioner password or key; the token was already used (each token is good once); " +
    "it expired or is not valid yet (clock skew between node and CA); " +
    `it was minted for another CA URL (audience) than ${caUrl}; the CSR's CN or SANs differ from the token's sub and sans; ` +
    "it was issued before the CA (re)started"
  );
}

/**
 * The enrolment side of one connected step-ca: the given tokens (routed by the roots it serves),
 * and, asked for once per run and shared by concurrent requests, the X5C provisioner's name and
 * the JWK provisioner's decrypted key (PBES2 is slow on purpose).
 */
export interface Enrolment {
  client: StepCaClient;
  connection: Connection;
  tokens: TokenPool;
  x5cProvisioner(): Promise<X5cProvisioner>;
  provisionerKey(): Promise<ProvisionerKey>;
  /** The machine certificate of the key in the TPM (identity: tpm), obtained or renewed once. */
  tpmMachine(): Promise<X5cCredential>;
}

export function createEnrolment(client: StepCaClient, connection: Connection): Enrolment {
  const { ctx, settings: s, servers, prefix } = client;
  // Read and checked before the run's first request to any CA (secrets.ts readCaSecrets).
  const given = ctx.secrets.tokenFile;
  const list = given ? parseTokenList(given.value, given.source) : [];
  const tokens = new TokenPool(
    list,
    Math.floor(ctx.clock.now() / 1000),
    connection.anchors.map(certFingerprint),
  );
  let x5cName: Promise<X5cProvisioner> | undefined;
  let key: Promise<ProvisionerKey> | undefined;
  let machine: Promise<X5cCredential> | undefined;
  const provisioners = () => listProvisioners(client, connection.tls);
  const self: Enrolment = {
    client,
    connection,
    tokens,
    // The one --ca-provisioner names (or the CA's only one), whose published roots must have
    // issued the machine certificate (checked with the certificate: x5cCredential).
    x5cProvisioner: () =>
      (x5cName ??= (async () =>
        pickProvisioner(
          "X5C",
          x5cProvisionersOf(await provisioners()),
          s.provisioner,
          servers.description,
          prefix,
        ))()),
    provisionerKey: () =>
      (key ??= (async () => {
        const p = machineJwk(self, await provisioners());
        const pw = ctx.secrets.passwordFile!.value;
        const signer = await decryptKey(p, pw, servers.description, prefix, passwordSource(client));
        return { name: p.name, signer };
      })()),
    tpmMachine: () => (machine ??= tpmMachine(self)),
  };
  return self;
}

/**
 * The JWK provisioner the password mints tokens for: the one --ca-provisioner names, or the CA's
 * only one. With the machine key in the TPM, --ca-provisioner names the X5C provisioner that
 * enrols the kubelet's certificates (docs/tpm.md); the password then obtains the machine
 * certificate from the CA's only JWK provisioner.
 */
function machineJwk(e: Enrolment, all: unknown[]): JwkProvisioner {
  const { ctx, settings: s, servers, prefix } = e.client;
  const jwk = jwkProvisionersOf(all);
  const x5cNamed =
    ctx.secrets.x5cTpm !== undefined &&
    s.provisioner !== undefined &&
    !jwk.some((p) => p.name === s.provisioner) &&
    x5cProvisionersOf(all).some((p) => p.name === s.provisioner);
  if (!x5cNamed) return pickProvisioner("JWK", jwk, s.provisioner, servers.description, prefix);
  if (jwk.length === 1) return jwk[0]!;
  throw new UsageError(
    `${servers.description}: the provisioner password obtains the machine certificate from the CA's JWK provisioner, but --${prefix}ca-provisioner names the X5C one ("${s.provisioner}") and the CA has ${jwk.length === 0 ? "no JWK provisioner" : `several (${jwk.map((p) => p.name).join(", ")})`}: give a one-time token for the machine certificate (--${prefix}ca-token-file) instead`,
  );
}

const tokenEnv = (client: StepCaClient) => secretEnvName(client.ctx.ca, "TOKEN");
const passwordEnv = (client: StepCaClient) => secretEnvName(client.ctx.ca, "PASSWORD");
const tokenSource = (client: StepCaClient): string =>
  client.ctx.secrets.tokenFile?.source ?? client.settings.tokenFile ?? tokenEnv(client);
const passwordSource = (client: StepCaClient): string =>
  client.ctx.secrets.passwordFile?.source ?? client.settings.passwordFile ?? passwordEnv(client);

function missingSecret(e: Enrolment, reqs: PlannedRequest[]): UsageError {
  const { client } = e;
  const p = client.prefix;
  const how =
    `give one one-time token per certificate (--${p}ca-token-file, one per line, or ${tokenEnv(client)}), ` +
    `or the provisioner password (--${p}ca-provisioner with --${p}ca-password-file or ${passwordEnv(client)}) so node-join mints them, ` +
    `or the machine certificate and key (--${p}ca-x5c-cert with --${p}ca-x5c-key) for an X5C provisioner`;
  const description = client.servers.description;
  if (e.tokens.size === 0 && e.tokens.skipped.length === 0)
    return new UsageError(`${description}: no enrolment secret: ${how}`);
  const list = reqs.map((r) => `${r.kind} (${describeTemplate(r.template)})`).join("; ");
  return new UsageError(
    `${description}: no one-time token for ${list} in ${tokenSource(client)} (it holds: ${e.tokens.summary()}): ` +
      `a token is good for exactly one certificate, whose CN and SANs must equal the token's sub and sans: ${how}`,
  );
}

/**
 * Why `req` cannot be enrolled again in place of a renewal the engine gave up on (`why`), naming
 * what to provide; undefined when an enrolment secret for it is configured.
 */
export function cannotEnrol(e: Enrolment, req: PlannedRequest, why: string): Error | undefined {
  const { ctx, servers, prefix: p } = e.client;
  if (e.tokens.has(req) || ctx.secrets.passwordFile !== undefined) return;
  if (ctx.secrets.x5c || ctx.secrets.x5cTpm) return;
  // A machine certificate that could enrol no longer can (x5c.ts withX5cCredential).
  if (ctx.secrets.x5cUnusable)
    return new CaRefusedError(
      `${servers.description}: ${why}, so it cannot be renewed, and X5C enrolment cannot replace it: ${ctx.secrets.x5cUnusable}`,
    );
  return new CaRefusedError(
    `${servers.description}: ${why}, so it cannot be renewed: give a one-time token for it (--${p}ca-token-file or ${tokenEnv(e.client)}) ` +
      `or the provisioner password (--${p}ca-provisioner with --${p}ca-password-file or ${passwordEnv(e.client)}) ` +
      `or the machine certificate (--${p}ca-x5c-cert with --${p}ca-x5c-key), then renew again`,
  );
}

/**
 * Checks that every planned request can be authorized (CaBackend.prepare). Finding the provisioner
 * and checking its roots mints no token: a dry run may do it too.
 */
export async function prepare(e: Enrolment, reqs: PlannedRequest[]): Promise<void> {
  const left = e.tokens.reserve(reqs);
  if (left.length === 0) return;
  const { x5c, x5cTpm } = e.client.ctx.secrets;
  if (x5c || x5cTpm) {
    const p = await e.x5cProvisioner();
    if (x5c) checkX5cRoots(x5c, p, e.client.servers.description);
    // The machine certificate of the key in the TPM, or a token to obtain it, before any CSR.
    if (x5cTpm) prepareMachine(e, x5cTpm);
    return;
  }
  if (e.client.ctx.secrets.passwordFile === undefined) throw missingSecret(e, left);
  // Decrypting now makes a wrong password stop the run before any CA sees a CSR.
  await e.provisionerKey();
}

export async function postSign(
  e: Enrolment,
  req: SignRequest,
  ott: (base: string) => string | Promise<string>,
  source: string,
  given: boolean,
  refused: (base: string) => string = (base) => tokenRefusedMessage(source, base),
): Promise<string> {
  let attempts = 0;
  const spentNote = () =>
    given && attempts > 1 ? " (an earlier attempt that failed in transit may have spent it)" : "";
  try {
    const { answer, what } = await e.client.call({
      method: "POST",
      path: "/1.0/sign",
      body: async (base) => {
        attempts++;
        return JSON.stringify({ csr: req.csrPem, ott: await ott(base) });
      },
      tls: e.connection.tls,
      what: `signing ${req.kind}`,
      unauthorized: refused,
    });
    return chainOf(answer, what);
  } catch (err) {
    if (err instanceof CaRefusedError && /HTTP 401/.test(err.message) && spentNote())
      throw new CaRefusedError(err.message + spentNote());
    throw err;
  }
}

/** Enrols `req` (CaBackend.sign): a given token for it, else X5C, else a minted token. */
export async function sign(e: Enrolment, req: SignRequest): Promise<string> {
  const { ctx, settings: s } = e.client;
  const now = () => Math.floor(ctx.clock.now() / 1000);
  const token = e.tokens.take(req);
  if (token)
    return postSign(
      e,
      req,
      () => token.token,
      `the one-time token ${token.position} from ${tokenSource(e.client)}`,
      true,
    );
  const x5c = ctx.secrets.x5c ?? (ctx.secrets.x5cTpm ? await e.tpmMachine() : undefined);
  if (x5c) {
    const p = await e.x5cProvisioner();
    checkX5cRoots(x5c, p, e.client.servers.description);
    const name = p.name;
    const sans = { sub: req.template.commonName, sans: tokenSans(req.template) };
    return postSign(
      e,
      req,
      (base) => signX5cToken(x5cSignToken(x5c, name, sans, base, now(), TOKEN_LIFETIME_S)),
      `the x5c token of the machine certificate in ${x5c.certFile}`,
      false,
      (base) => x5cRefusedMessage(x5c, name, base),
    );
  }
  if (ctx.secrets.passwordFile === undefined) throw missingSecret(e, [req]);
  const key = await e.provisionerKey();
  const sha = s.fingerprint ?? certFingerprint(e.connection.anchors[0]!);
  return postSign(
    e,
    req,
    (base) => mintToken(key, req.template, base, sha, now()),
    `the token node-join minted with provisioner "${key.name}"`,
    false,
  );
}

/**
 * identity: tpm: before any CSR, the machine certificate is there and valid, or a one-time token
 * (or the JWK provisioner's password) will obtain it; exit 2 naming what to give otherwise.
 */
export function prepareMachine(e: Enrolment, id: TpmX5cIdentity): void {
  const leaf = id.chain?.[0];
  if (leaf && leaf.notAfter.getTime() > e.client.ctx.clock.now()) return;
  const req = machineRequest(id);
  if (e.tokens.reserve([req]).length === 0 || e.client.ctx.secrets.passwordFile) return;
  const { client } = e;
  const p = client.prefix;
  throw new UsageError(
    `${client.servers.description}: the machine key in ${id.source} has ${leaf ? `an expired machine certificate (${id.certFile}, ${leaf.notAfter.toISOString()})` : "no machine certificate yet"}: give a one-time token for it (${describeTemplate(req.template)}: step ca token ${id.nodeName} --provisioner <JWK provisioner>) with --${p}ca-token-file or ${tokenEnv(client)}`,
  );
}

/**
 * The machine certificate of the key in the TPM as X5C enrolment takes it: the one kept, renewed
 * with a token the TPM signs once two thirds of its life passed (a failed renewal is a warning
 * while it is valid); else obtained with a one-time JWK token for a CSR signed in the TPM.
 */
async function tpmMachine(e: Enrolment): Promise<X5cCredential> {
  const { ctx, servers } = e.client;
  const id = ctx.secrets.x5cTpm!;
  const now = ctx.clock.now();
  const kept = id.chain;
  if (kept && kept[0]!.notAfter.getTime() > now) {
    if (!machineRenewalDue(kept[0]!, now)) return tpmCredential(id, kept);
    try {
      const r = await renewToken(
        e.client,
        e.connection.tls,
        { kind: "the X5C machine certificate", key: tpmSigner(id) },
        kept,
        false,
      );
      return tpmCredential(id, await machineAnswer(e, id, r.chainPem));
    } catch (err) {
      if (!(err instanceof CaRefusedError)) throw err;
      ctx.log(`WARNING: ${err.message}; enrolling with the current one until it expires`);
      return tpmCredential(id, kept);
    }
  }
  const req = { ...machineRequest(id), profile: "client" as const, csrPem: await machineCsr(id) };
  const token = e.tokens.take(req);
  const sans = `(${describeTemplate(req.template)}) for the machine key in ${id.source}`;
  let chainPem: string;
  let spent: string | undefined;
  if (token) {
    const source = `the one-time token ${token.position} from ${tokenSource(e.client)}`;
    chainPem = await postSign(e, req, () => token.token, source, true);
    const file = e.client.settings.tokenFile;
    if (file && ctx.secrets.tokenFile?.source === file && e.tokens.spent()) spent = file;
  } else {
    if (ctx.secrets.passwordFile === undefined) prepareMachine(e, id);
    const key = await e.provisionerKey();
    const sha = e.client.settings.fingerprint ?? certFingerprint(e.connection.anchors[0]!);
    const t = (base: string) => mintToken(key, req.template, base, sha, Math.floor(now / 1000));
    chainPem = await postSign(e, req, t, `the token minted with "${key.name}"`, false);
  }
  ctx.log(`${servers.description}: obtained the X5C machine certificate ${sans}`);
  return tpmCredential(id, await machineAnswer(e, id, chainPem, spent));
}

/** The CA's machine certificate, checked to certify the TPM's key, then kept (obtained). */
async function machineAnswer(
  e: Enrolment,
  id: TpmX5cIdentity,
  chainPem: string,
  spentTokenFile?: string,
): Promise<CertInfo[]> {
  const chain = splitPemCertificates(chainPem, "the X5C machine certificate").map(parseCert);
  if (!chain[0]!.spki.equals(spkiDer(await id.publicKey())))
    throw new CaRefusedError(
      `${e.client.servers.description}: the X5C machine certificate it answered does not certify the key in ${id.source}`,
    );
  id.obtained(chainPem, chain, spentTokenFile);
  return chain;
}
