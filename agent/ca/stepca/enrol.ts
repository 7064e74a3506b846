// Enrolment at step-ca's /1.0/sign (smallstep/certificates api/sign.go) with a one-time token per
// certificate: given (tokens.ts), minted here with the JWK provisioner's key (provisioners.ts), or
// signed with the node's machine certificate for an X5C provisioner (x5c.ts).
import { CaRefusedError, UsageError } from "../../common/errors.js";
import { certFingerprint } from "../../pki/x509.js";
import type { PlannedRequest, SignRequest } from "../backend.js";
import { secretEnvName, type SecretKind } from "../secrets.js";
import { signX5cToken } from "../x5c.js";
import { chainOf, type Connection, type StepCaClient } from "./client.js";
import {
  decryptKey,
  jwkProvisionersOf,
  listProvisioners,
  mintToken,
  TOKEN_LIFETIME_S,
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
} from "./x5c.js";

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
  x5cProvisioner(): Promise<string>;
  provisionerKey(): Promise<ProvisionerKey>;
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
  let x5cName: Promise<string> | undefined;
  let key: Promise<ProvisionerKey> | undefined;
  const provisioners = () => listProvisioners(client, connection.tls);
  return {
    client,
    connection,
    tokens,
    // The one --ca-provisioner names (or the CA's only one), whose published roots must have
    // issued the machine certificate.
    x5cProvisioner: () =>
      (x5cName ??= (async () => {
        const p = pickProvisioner(
          "X5C",
          x5cProvisionersOf(await provisioners()),
          s.provisioner,
          servers.description,
          prefix,
        );
        checkX5cRoots(ctx.secrets.x5c!, p, servers.description);
        return p.name;
      })()),
    provisionerKey: () =>
      (key ??= (async () => {
        const p = pickProvisioner(
          "JWK",
          jwkProvisionersOf(await provisioners()),
          s.provisioner,
          servers.description,
          prefix,
        );
        const pw = ctx.secrets.passwordFile!.value;
        const signer = await decryptKey(p, pw, servers.description, prefix, passwordSource(client));
        return { name: p.name, signer };
      })()),
  };
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
  if (e.tokens.has(req) || ctx.secrets.passwordFile !== undefined || ctx.secrets.x5c) return;
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
  if (e.client.ctx.secrets.x5c) {
    await e.x5cProvisioner();
    return;
  }
  if (e.client.ctx.secrets.passwordFile === undefined) throw missingSecret(e, left);
  // Decrypting now makes a wrong password stop the run before any CA sees a CSR.
  await e.provisionerKey();
}

async function postSign(
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
  const x5c = ctx.secrets.x5c;
  if (x5c) {
    const name = await e.x5cProvisioner();
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
