// smallstep step-ca (smallstep/certificates ca/, api/, authority/provisioner/jwk.go; 0.19 tested):
// the root by fingerprint from /root/<fp>, enrolment at /1.0/sign with a one-time JWK token per
// certificate (given, or minted here from the provisioner's encrypted key) or an x5c token signed
// with the node's machine certificate (X5C provisioner, stepca-x5c.ts), renewal over mTLS with the
// current certificate at /1.0/rekey (fresh key) or /1.0/renew (same key), or with a token signed
// by the current key at /1.0/renew (the same key: through a TLS-terminating proxy, after expiry).
import { createPrivateKey, type JsonWebKey } from "node:crypto";
import type { CertTemplate } from "../pki/certs.js";
import {
  CaRefusedError,
  NoRevocationError,
  UsageError,
  VerificationError,
} from "../common/errors.js";
import { ipFamily } from "../common/ip.js";
import { sanDifference, type RequestedSans } from "../pki/verify.js";
import { TransientError } from "./retry.js";
import { secretEnvName, type SecretKind } from "./secrets.js";
import { peculiar } from "../pki/peculiar.js";
import {
  buildChain,
  certFingerprint,
  derToPem,
  parseCert,
  splitPemCertificates,
  type CertInfo,
} from "../pki/x509.js";
import type {
  BackendContext,
  CaBackend,
  CommonCaSettings,
  PlannedRequest,
  Renewed,
  RenewRequest,
  RevokeReason,
  RevokeRequest,
  SignRequest,
} from "./backend.js";
import type { StepCaRenewAuth, StepCaSettings } from "./stepca-settings.js";
import { extensionOids } from "../pki/der.js";
import {
  baseUrl,
  CaServers,
  notIssuedToANode,
  notTrusted,
  parseCaPem,
  retrying,
  revokedLeaf,
  serverTrust,
  type ServerIdentityRule,
} from "./common.js";
import { httpRequest, type TlsTrust } from "./http.js";
import {
  decryptPbes2Jwe,
  importPrivateJwk,
  JoseError,
  jwkThumbprint,
  randomJti,
  signJwt,
  WrongPasswordError,
  type SigningJwk,
} from "./jose.js";
import { describeTemplate, parseTokenList, pickProvisioner, TokenPool } from "./stepca-tokens.js";
import {
  checkX5cRoots,
  X5C_KEY_SECRET,
  x5cProvisionersOf,
  x5cRefusedMessage,
  x5cSignToken,
} from "./stepca-x5c.js";
import { signX5cToken } from "./x5c.js";
import { anchorOf, authenticateCa, loadPemFile } from "./trust.js";

/** Lifetime of the tokens node-join mints: `step ca token`'s default. */
const TOKEN_LIFETIME_S = 300;
/** /provisioners is paged; a CA with more pages than this is answering nonsense. */
const MAX_PROVISIONER_PAGES = 50;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The "message" of a step-ca error body {status, message}, if it is one. */
function messageOf(body: string): string | undefined {
  try {
    const v: unknown = JSON.parse(body);
    return isObject(v) && typeof v.message === "string" ? v.message : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A 4xx answer as the error the operator sees. 401 is generic (the CA logs the reason, never sends
 * it), so `unauthorized` says what was refused and why that usually happens; 403 carries the
 * reason.
 */
export function stepCaRefusal(
  status: number,
  body: string,
  what: string,
  unauthorized: string,
): CaRefusedError {
  const msg = messageOf(body);
  if (status === 401) return new CaRefusedError(`${what}: ${unauthorized}`);
  if (status === 403)
    return new CaRefusedError(`${what} refused: ${msg ?? "forbidden (no reason given)"}`);
  return new CaRefusedError(`${what}: HTTP ${status}${msg ? `: ${msg}` : ""}`);
}

export function tokenRefusedMessage(source: string, caUrl: string): string {
  return (
    `${source} was refused (HTTP 401; step-ca logs the reason but does not send it). Usual causes: ` +
    "a wrong provisioner password or key; the token was already used (each token is good once); " +
    "it expired or is not valid yet (clock skew between node and CA); " +
    `it was minted for another CA URL (audience) than ${caUrl}; the CSR's CN or SANs differ from the token's sub and sans; ` +
    "it was issued before the CA (re)started"
  );
}

const RENEWAL_REFUSED =
  "the CA refused the current certificate (HTTP 401): it may be revoked, issued by another CA, or its provisioner may have renewal disabled";

const TOKEN_RENEWAL_REFUSED =
  "the CA refused the renew token signed by the current certificate's key (HTTP 401): the certificate may be revoked or issued by another CA, its provisioner may have renewal disabled, or the node's clock may be off by more than a minute";

/** Lifetime of a renew token: `step ca renew --mtls=false` mints one per request. */
const RENEW_TOKEN_LIFETIME_S = 300;

/**
 * Whether the answer to an mTLS renewal says the client certificate did not reach step-ca, as
 * behind a TLS-terminating proxy: step-ca 0.19 (api/rekey.go, api/renew.go) answers 400 "missing
 * client certificate"; a proxy that wants a certificate itself answers 403 (not step-ca's JSON
 * error) or, nginx, 495/496 ("SSL certificate error", "SSL certificate required"). step-ca's own
 * 401 means it got the certificate and refused it (revoked, renewal disabled): a token signed by
 * the same key would be refused too.
 */
export function mtlsRefused(status: number, body: string): boolean {
  if (status === 400) return /missing client certificate/i.test(messageOf(body) ?? body);
  if (status === 403) return messageOf(body) === undefined;
  return status === 495 || status === 496;
}

/**
 * The ways to try a step-ca renewal, in order (cas.<ca>.renewAuth). An expired certificate cannot
 * authenticate a TLS handshake, so after expiry only the token can renew it; "auto" tries the
 * token after mTLS only when mtlsRefused says the certificate never reached the CA, and goes
 * straight to the token once mTLS was refused in this run.
 */
export function renewalPaths(
  auth: StepCaRenewAuth,
  expired: boolean,
  mtlsRefusedBefore: boolean,
): ("mtls" | "token")[] {
  if (auth === "token") return ["token"];
  if (auth === "mtls") return expired ? [] : ["mtls"];
  return expired || mtlsRefusedBefore ? ["token"] : ["mtls", "token"];
}

/** An mTLS renewal the CA did not get the client certificate for (mtlsRefused). */
class MtlsRefusedError extends CaRefusedError {}

/** certChain (leaf, intermediate) of a /1.0/sign, /renew or /rekey answer, as one PEM text. */
export function chainOf(answer: Json, what: string): string {
  const nl = (p: string) => (p.endsWith("\n") ? p : `${p}\n`);
  const chain = Array.isArray(answer.certChain)
    ? answer.certChain.filter((c): c is string => typeof c === "string")
    : [];
  if (chain.length > 0) return chain.map(nl).join("");
  if (typeof answer.crt === "string")
    return nl(answer.crt) + (typeof answer.ca === "string" ? nl(answer.ca) : "");
  throw new CaRefusedError(`${what}: the answer holds no certificate`);
}

/** The body of a 2xx answer as a JSON object, or a CaRefusedError quoting its start. */
export function parseAnswer(body: string, what: string): Json {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (!isObject(parsed))
    throw new CaRefusedError(
      `${what}: the answer is not a JSON object (${JSON.stringify(body.slice(0, 80))})`,
    );
  return parsed;
}

async function csrSpki(csrPem: string): Promise<Buffer> {
  const x509 = await peculiar();
  return Buffer.from(new x509.Pkcs10CertificateRequest(csrPem).publicKey.rawData);
}

/**
 * The "sans" claim of the token for `template`: its SANs, or [CN] when it has none, as `step ca
 * token <CN>` writes it (an empty claim is no different: step-ca's JWK provisioner then takes
 * [sub], authority/provisioner/jwk.go).
 */
export function tokenSans(template: CertTemplate): string[] {
  const sans = [...template.sans.dnsNames, ...template.sans.ips];
  return sans.length ? sans : [template.commonName];
}

/**
 * How step-ca types the names of a token's "sans" (go.step.sm/crypto x509util.SplitSANs): an IP,
 * a URI when Go's url.Parse finds a scheme ("system:node:w1"), an e-mail address when it holds
 * "@", else a DNS name.
 */
export function stepCaSanSet(names: string[]): RequestedSans {
  const out = {
    dnsNames: [] as string[],
    ips: [] as string[],
    uris: [] as string[],
    emails: [] as string[],
  };
  for (const n of names) {
    if (ipFamily(n)) out.ips.push(n);
    else if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(n))
      out.uris.push(n.replace(/^[^:]+/, (scheme) => scheme.toLowerCase()));
    else if (n.includes("@")) out.emails.push(n);
    else out.dnsNames.push(n);
  }
  return out;
}

/**
 * What node-join asks step-ca for: the CSR's SANs (the template's) and the token's "sans". A
 * provisioner template that copies the CSR's SANs issues the first, one that uses the token's
 * (step-ca's default `"sans": {{ toJson .SANs }}`) the second: for a kind without SANs, the CN
 * as its one SAN. Exactly one of them, nothing else, is what was requested.
 */
export function stepCaRequestedSans(template: CertTemplate): RequestedSans[] {
  const { dnsNames, ips } = template.sans;
  // With SANs, the token's "sans" are the same names (mintToken, tokenFits).
  return dnsNames.length + ips.length
    ? [template.sans]
    : [template.sans, stepCaSanSet(tokenSans(template))];
}

/**
 * Why a certificate cannot simply be renewed into `template` (renew and rekey keep the subject and
 * the SANs), compared as exactly as an answer is verified.
 */
function identityChange(cert: CertInfo, template: CertTemplate): string | undefined {
  if (cert.commonNames.length !== 1 || cert.commonName !== template.commonName)
    return `CN is "${cert.commonNames.join('", "')}", needs "${template.commonName}"`;
  const o = new Set(cert.organizations);
  if (
    o.size !== new Set(template.organizations).size ||
    template.organizations.some((x) => !o.has(x))
  )
    return `O is ${JSON.stringify(cert.organizations)}, needs ${JSON.stringify(template.organizations)}`;
  return sanDifference(cert, stepCaRequestedSans(template));
}

/** The CA certificates a server sent, and the CA at that server as messages name it. */
interface Fetched {
  from: string;
  sent: CertInfo[];
  /** The issuer of the server's TLS certificate (HttpResponse.serverIssuer), where known. */
  tlsIssuer?: Buffer;
}

interface JwkProvisioner {
  name: string;
  key: JsonWebKey & { kid?: string };
  encryptedKey?: string;
}

interface ProvisionerKey {
  name: string;
  signer: SigningJwk;
}

interface Call {
  method: "GET" | "POST";
  path: string;
  /**
   * Built per attempt, for the server asked: a minted token must be new for every attempt, and its
   * audience is that server's URL.
   */
  body?: (url: string) => string | Promise<string>;
  tls: TlsTrust | undefined;
  /** What is asked ("signing kubelet"), after the CA at the server asked in messages. */
  what: string;
  /** Why a 401 usually happens, for the server at `url`. */
  unauthorized: string | ((url: string) => string);
  /** Maps a status to an error before the generic mapping (e.g. 404 on /root/<fp>, any 3xx-5xx). */
  special?: (status: number, from: string, body: string) => Error | undefined;
  /** The Authorization header, built per attempt for the server asked (a renew token). */
  authorization?: (url: string) => Promise<string>;
}

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

export function createStepCaBackend(ctx: BackendContext<StepCaSettings>): CaBackend {
  const s = ctx.settings;
  const servers = new CaServers(
    s.urls,
    ctx.preferredUrl,
    (server) => `CA ${ctx.ca.display} (step-ca${server ? ` ${server}` : ""})`,
  );
  for (const url of s.urls)
    if (!url.startsWith("https:"))
      throw new UsageError(
        `${servers.describe(url)}: step-ca answers over HTTPS only: give an https:// CA URL`,
      );
  const prefix = ctx.ca.flagPrefix;
  const tokenEnv = secretEnvName(ctx.ca, "TOKEN");
  const passwordEnv = secretEnvName(ctx.ca, "PASSWORD");
  let tls: TlsTrust | undefined;
  let anchors: CertInfo[] | undefined;
  let signer: CertInfo | undefined;
  let offered: CertInfo[] = [];

  /** The answer of the server that answered, and `c.what` at that server as messages name it. */
  const call = (
    c: Call,
  ): Promise<{ answer: Json; what: string; from: string; tlsIssuer?: Buffer }> =>
    retrying(ctx, servers, async (url, timeoutMs) => {
      const from = servers.describe(url);
      const what = `${from} ${c.what}`;
      const res = await httpRequest({
        method: c.method,
        url: `${baseUrl(url)}${c.path}`,
        ...(c.body ? { body: await c.body(baseUrl(url)) } : {}),
        ...(c.authorization ? { authorization: await c.authorization(baseUrl(url)) } : {}),
        timeoutMs,
        tls: c.tls,
        ...(ctx.proxy ? { proxy: ctx.proxy } : {}),
        what: from,
      });
      // A status the request knows better (e.g. 501 from /1.0/revoke) before the generic mapping.
      const known = res.status >= 300 ? c.special?.(res.status, from, res.body) : undefined;
      if (known) throw known;
      if (res.status >= 500) {
        const msg = messageOf(res.body);
        throw new TransientError(`HTTP ${res.status}${msg ? `: ${msg}` : ""}`);
      }
      if (res.status >= 300) {
        const unauthorized =
          typeof c.unauthorized === "string" ? c.unauthorized : c.unauthorized(baseUrl(url));
        throw stepCaRefusal(res.status, res.body, what, unauthorized);
      }
      const answer = parseAnswer(res.body, what);
      return { answer, what, from, ...(res.serverIssuer ? { tlsIssuer: res.serverIssuer } : {}) };
    });

  const connectedTrust = (): TlsTrust | undefined => {
    if (!anchors) throw new Error("step-ca backend: fetchCaBundle must run first");
    return tls;
  };

  // ---- trust -------------------------------------------------------------------------------

  /** step's bootstrap: fetch the root unverified, then check its fingerprint (authenticateCa). */
  const fetchRoot = async (fingerprint: string): Promise<Fetched> => {
    const notFound = (status: number, from: string) =>
      status === 404
        ? new VerificationError(
            `${from}: the CA has no root with fingerprint ${fingerprint}: wrong --${prefix}ca-fingerprint or wrong CA URL`,
          )
        : undefined;
    const { answer, what, from } = await call({
      method: "GET",
      path: `/root/${fingerprint}`,
      tls: undefined,
      what: `root ${fingerprint}`,
      unauthorized: "HTTP 401",
      special: notFound,
    });
    if (typeof answer.ca !== "string")
      throw new CaRefusedError(`${what}: the answer holds no certificate`);
    return { from, sent: parseCaPem(answer.ca, from, "root answer") };
  };

  const fetchRoots = async (trust?: TlsTrust): Promise<Fetched> => {
    const { answer, what, from, tlsIssuer } = await call({
      method: "GET",
      path: "/roots",
      tls: trust,
      what: "roots",
      unauthorized: "HTTP 401",
    });
    const pems = Array.isArray(answer.crts)
      ? answer.crts.filter((c): c is string => typeof c === "string")
      : [];
    if (pems.length === 0) throw new CaRefusedError(`${what}: the answer holds no certificate`);
    const sent = pems.flatMap((p) => parseCaPem(p, from, "roots answer"));
    return { from, sent, ...(tlsIssuer ? { tlsIssuer } : {}) };
  };

  // ---- enrolment secrets -------------------------------------------------------------------

  let pool: TokenPool | undefined;
  // Read and checked before the run's first request to any CA (secrets.ts readCaSecrets).
  const given = ctx.secrets.tokenFile;
  const tokenSource = (): string => given?.source ?? s.tokenFile ?? tokenEnv;
  const tokens = (): TokenPool => {
    if (pool) return pool;
    const list = given ? parseTokenList(given.value, given.source) : [];
    pool = new TokenPool(
      list,
      Math.floor(ctx.clock.now() / 1000),
      (anchors ?? []).map(certFingerprint),
    );
    return pool;
  };

  const password = (): string | undefined => ctx.secrets.passwordFile?.value;
  const passwordSource = (): string =>
    ctx.secrets.passwordFile?.source ?? s.passwordFile ?? passwordEnv;
  // X5C enrolment: the machine certificate signs the tokens (checked before any request).
  const x5c = ctx.secrets.x5c;
  const canEnrol = (req: PlannedRequest): boolean =>
    tokens().has(req) || password() !== undefined || x5c !== undefined;

  const missingSecret = (reqs: PlannedRequest[]): UsageError => {
    const how =
      `give one one-time token per certificate (--${prefix}ca-token-file, one per line, or ${tokenEnv}), ` +
      `or the provisioner password (--${prefix}ca-provisioner with --${prefix}ca-password-file or ${passwordEnv}) so node-join mints them, ` +
      `or the machine certificate and key (--${prefix}ca-x5c-cert with --${prefix}ca-x5c-key) for an X5C provisioner`;
    const p = tokens();
    if (p.size === 0 && p.skipped.length === 0)
      return new UsageError(`${servers.description}: no enrolment secret: ${how}`);
    const list = reqs.map((r) => `${r.kind} (${describeTemplate(r.template)})`).join("; ");
    return new UsageError(
      `${servers.description}: no one-time token for ${list} in ${tokenSource()} (it holds: ${p.summary()}): ` +
        `a token is good for exactly one certificate, whose CN and SANs must equal the token's sub and sans: ${how}`,
    );
  };

  // ---- provisioner key and minted tokens -----------------------------------------------------

  /** Every provisioner the CA lists (GET /provisioners, all pages), as it lists them. */
  const listProvisioners = async (): Promise<unknown[]> => {
    const out: unknown[] = [];
    let cursor = "";
    for (let page = 0; page < MAX_PROVISIONER_PAGES; page++) {
      const path = `/provisioners${cursor ? `?cursor=${encodeURIComponent(cursor)}` : ""}`;
      const { answer } = await call({
        method: "GET",
        path,
        tls: connectedTrust(),
        what: "provisioners",
        unauthorized: "HTTP 401",
      });
      if (Array.isArray(answer.provisioners)) out.push(...(answer.provisioners as unknown[]));
      cursor = typeof answer.nextCursor === "string" ? answer.nextCursor : "";
      if (!cursor) break;
    }
    return out;
  };

  const listJwkProvisioners = async (): Promise<JwkProvisioner[]> => {
    const out: JwkProvisioner[] = [];
    for (const p of await listProvisioners()) {
      if (isObject(p) && p.type === "JWK" && typeof p.name === "string" && isObject(p.key)) {
        out.push({
          name: p.name,
          key: p.key as JwkProvisioner["key"],
          ...(typeof p.encryptedKey === "string" ? { encryptedKey: p.encryptedKey } : {}),
        });
      }
    }
    return out;
  };

  let x5cPromise: Promise<string> | undefined;
  /**
   * The X5C provisioner's name, once per run: the one --ca-provisioner names (or the CA's only
   * one), whose published roots must have issued the machine certificate.
   */
  const x5cProvisioner = (): Promise<string> =>
    (x5cPromise ??= (async () => {
      const p = pickProvisioner(
        "X5C",
        x5cProvisionersOf(await listProvisioners()),
        s.provisioner,
        servers.description,
        prefix,
      );
      checkX5cRoots(x5c!, p, servers.description);
      return p.name;
    })());

  const decryptKey = async (p: JwkProvisioner, pw: string): Promise<SigningJwk> => {
    if (!p.encryptedKey) {
      throw new CaRefusedError(
        `${servers.description}: JWK provisioner "${p.name}" publishes no encryptedKey: mint tokens elsewhere (step ca token) and give them with --${prefix}ca-token-file`,
      );
    }
    let signer: SigningJwk & { thumbprint: string };
    try {
      signer = await importPrivateJwk(await decryptPbes2Jwe(p.encryptedKey, pw));
    } catch (err) {
      if (err instanceof WrongPasswordError) {
        throw new UsageError(
          `${servers.description}: cannot decrypt the key of provisioner "${p.name}" with the password from ${passwordSource()}: wrong password (${err.message}); no CSR was sent`,
        );
      }
      if (err instanceof JoseError)
        throw new CaRefusedError(
          `${servers.description}: the encrypted key of provisioner "${p.name}": ${err.message}`,
        );
      throw err;
    }
    // RFC 7638 thumbprints cover the public members only: equal iff the two halves match.
    const published = await jwkThumbprint(p.key).catch(() => undefined);
    if (signer.thumbprint !== published) {
      throw new CaRefusedError(
        `${servers.description}: the decrypted key of provisioner "${p.name}" is not the private half of its public key`,
      );
    }
    const { key, alg, kid } = signer;
    return { key, alg, ...(p.key.kid ? { kid: p.key.kid } : kid ? { kid } : {}) };
  };

  let keyPromise: Promise<ProvisionerKey> | undefined;
  // Decrypted once per run (PBES2 is slow on purpose), shared by the concurrent requests.
  const provisionerKey = (): Promise<ProvisionerKey> =>
    (keyPromise ??= (async () => {
      const p = pickProvisioner(
        "JWK",
        await listJwkProvisioners(),
        s.provisioner,
        servers.description,
        prefix,
      );
      return { name: p.name, signer: await decryptKey(p, password()!) };
    })());

  /** A token for the server at `base`: step-ca checks the audience against its own URL. */
  const mintToken = (k: ProvisionerKey, template: CertTemplate, base: string): Promise<string> => {
    const now = Math.floor(ctx.clock.now() / 1000);
    const claims = {
      aud: [`${base}/1.0/sign`],
      sub: template.commonName,
      iss: k.name,
      // Never empty: step-ca would take [sub] (stepCaRequestedSans says what that becomes).
      sans: tokenSans(template),
      iat: now,
      nbf: now,
      exp: now + TOKEN_LIFETIME_S,
      jti: randomJti(),
      sha: s.fingerprint ?? certFingerprint(anchors![0]!),
    };
    return signJwt({ kid: k.signer.kid, typ: "JWT" }, claims, k.signer);
  };

  // ---- requests ----------------------------------------------------------------------------

  const postSign = async (
    req: SignRequest,
    ott: (base: string) => string | Promise<string>,
    source: string,
    given: boolean,
    refused: (base: string) => string = (base) => tokenRefusedMessage(source, base),
  ): Promise<string> => {
    let attempts = 0;
    const spentNote = () =>
      given && attempts > 1 ? " (an earlier attempt that failed in transit may have spent it)" : "";
    try {
      const { answer, what } = await call({
        method: "POST",
        path: "/1.0/sign",
        body: async (base) => {
          attempts++;
          return JSON.stringify({ csr: req.csrPem, ott: await ott(base) });
        },
        tls: connectedTrust(),
        what: `signing ${req.kind}`,
        unauthorized: refused,
      });
      return chainOf(answer, what);
    } catch (err) {
      if (err instanceof CaRefusedError && /HTTP 401/.test(err.message) && spentNote())
        throw new CaRefusedError(err.message + spentNote());
      throw err;
    }
  };

  const sign = async (req: SignRequest): Promise<string> => {
    connectedTrust();
    const token = tokens().take(req);
    if (token)
      return postSign(
        req,
        () => token.token,
        `the one-time token ${token.position} from ${tokenSource()}`,
        true,
      );
    if (x5c) {
      const name = await x5cProvisioner();
      const sans = { sub: req.template.commonName, sans: tokenSans(req.template) };
      return postSign(
        req,
        (base) =>
          signX5cToken(
            x5cSignToken(
              x5c,
              name,
              sans,
              base,
              Math.floor(ctx.clock.now() / 1000),
              TOKEN_LIFETIME_S,
            ),
          ),
        `the x5c token of the machine certificate in ${x5c.certFile}`,
        false,
        (base) => x5cRefusedMessage(x5c, name, base),
      );
    }
    if (password() === undefined) throw missingSecret([req]);
    const key = await provisionerKey();
    return postSign(
      req,
      (base) => mintToken(key, req.template, base),
      `the token node-join minted with provisioner "${key.name}"`,
      false,
    );
  };

  const enrolInstead = (req: RenewRequest, why: string): Promise<string> => {
    if (canEnrol(req)) {
      ctx.log(`${servers.description}: ${why}: enrolling ${req.kind} again`);
      return sign(req);
    }
    // A machine certificate that could enrol no longer can (stepca-x5c.ts withX5cCredential).
    if (ctx.secrets.x5cUnusable)
      throw new CaRefusedError(
        `${servers.description}: ${why}, so it cannot be renewed, and X5C enrolment cannot replace it: ${ctx.secrets.x5cUnusable}`,
      );
    throw new CaRefusedError(
      `${servers.description}: ${why}, so it cannot be renewed: give a one-time token for it (--${prefix}ca-token-file or ${tokenEnv}) ` +
        `or the provisioner password (--${prefix}ca-provisioner with --${prefix}ca-password-file or ${passwordEnv}) ` +
        `or the machine certificate (--${prefix}ca-x5c-cert with --${prefix}ca-x5c-key), then renew again`,
    );
  };

  const renewAuth: StepCaRenewAuth = s.renewAuth ?? "auto";
  const renewAuthName = `--${prefix}ca-renew-auth (config cas.${ctx.ca.name}.renewAuth)`;
  /** Why mTLS failed earlier in this run ("auto" then goes straight to the token). */
  let mtlsRefusal: string | undefined;

  /**
   * /1.0/rekey (a new key in the CSR) or /1.0/renew (the same key), the current certificate in the
   * TLS handshake.
   */
  const renewMtls = async (req: RenewRequest, current: CertInfo): Promise<Renewed> => {
    const mtls: TlsTrust = {
      ...connectedTrust(),
      cert: req.currentCertPem,
      key: req.currentKeyPem,
    };
    const sameKey = (await csrSpki(req.csrPem)).equals(current.spki);
    const refused = (status: number, from: string, body: string) =>
      mtlsRefused(status, body)
        ? new MtlsRefusedError(
            `${from} ${sameKey ? "renewing" : "rekeying"} ${req.kind} over mTLS: the CA did not get the client certificate (HTTP ${status}${messageOf(body) ? `: ${messageOf(body)}` : ""})`,
          )
        : undefined;
    const { answer, what } = await call({
      method: "POST",
      path: sameKey ? "/1.0/renew" : "/1.0/rekey",
      ...(sameKey ? {} : { body: () => JSON.stringify({ csr: req.csrPem }) }),
      tls: mtls,
      what: `${sameKey ? "renewing" : "rekeying"} ${req.kind}`,
      unauthorized: RENEWAL_REFUSED,
      special: refused,
    });
    return { chainPem: chainOf(answer, what), keptCurrentKey: false };
  };

  /**
   * /1.0/renew with "Authorization: Bearer <token>": an x5cInsecure token signed by the current
   * key (step-ca 0.19 api/renew.go, authority.AuthorizeRenewToken: sub = the leaf's CN, aud = the
   * CA's /1.0/renew URL, iss "step-ca-client/1.0" as `step ca renew --mtls=false` writes it). No
   * CSR: the CA certifies the current key again.
   */
  const renewToken = async (req: RenewRequest, current: CertInfo): Promise<Renewed> => {
    const chainDer = splitPemCertificates(
      req.currentCertPem,
      `current ${req.kind} certificate`,
    ).map((pem) => parseCert(pem).der);
    const key = createPrivateKey(req.currentKeyPem);
    // step-ca answers an invalid audience with a 500 that names it: no use retrying that.
    const audience = (status: number, from: string, body: string) => {
      const msg = messageOf(body) ?? "";
      return status >= 500 && /renew token/.test(msg)
        ? new CaRefusedError(
            `${from} renewing ${req.kind} with a token: ${msg} (the token's audience is the CA URL node-join was given: its host must be one of step-ca's dnsNames)`,
          )
        : undefined;
    };
    const { answer, what } = await call({
      method: "POST",
      path: "/1.0/renew",
      authorization: async (base) =>
        `Bearer ${await signX5cToken({
          chainDer,
          key,
          chainHeader: "x5cInsecure",
          issuer: "step-ca-client/1.0",
          subject: current.commonName,
          audience: `${base}/1.0/renew`,
          now: Math.floor(ctx.clock.now() / 1000),
          lifetimeS: RENEW_TOKEN_LIFETIME_S,
        })}`,
      tls: connectedTrust(),
      what: `renewing ${req.kind} with a token`,
      unauthorized: TOKEN_RENEWAL_REFUSED,
      special: audience,
    });
    const note = `renewed with a token signed by its key${mtlsRefusal ? " as mTLS was refused" : ""}: the key is kept, step-ca has no token rekey`;
    return { chainPem: chainOf(answer, what), keptCurrentKey: true, note };
  };

  const renew = async (req: RenewRequest): Promise<Renewed> => {
    const [current, ...intermediates] = splitPemCertificates(
      req.currentCertPem,
      `current ${req.kind} certificate`,
    ).map(parseCert) as [CertInfo, ...CertInfo[]];
    // Another CA's certificate would only fail the TLS handshake, which looks like an outage.
    if (!buildChain(current, intermediates, anchors!))
      return enrolIn(
        req,
        `${req.kind} was not issued by this CA (issuer "${current.issuerCommonName}")`,
      );
    const change = identityChange(current, req.template);
    if (change)
      return enrolIn(
        req,
        `${req.kind} must change (${change}) and renewal keeps the old subject and SANs`,
      );
    const expired = current.notAfter.getTime() <= ctx.clock.now();
    const expiry = `${req.kind} expired on ${current.notAfter.toISOString()}`;
    const paths = renewalPaths(renewAuth, expired, mtlsRefusal !== undefined);
    if (paths.length === 0)
      return enrolIn(
        req,
        `${expiry} and an expired certificate cannot authenticate the mTLS renewal (${renewAuthName} is mtls; auto or token renews it with a token where the provisioner allows renewal after expiry)`,
      );
    if (paths[0] === "mtls") {
      try {
        return await renewMtls(req, current);
      } catch (err) {
        if (!(err instanceof MtlsRefusedError)) throw err;
        if (paths.length === 1)
          throw new CaRefusedError(
            `${err.message}: a TLS-terminating proxy in front of step-ca? set ${renewAuthName} to token or auto to renew with a token signed by the current key`,
          );
        mtlsRefusal = err.message;
        ctx.log(`${err.message}: renewing with a token signed by its key instead`);
      }
    }
    try {
      return await renewToken(req, current);
    } catch (err) {
      // The CA's reason stays in its log; after expiry the provisioner's claim is the usual one.
      if (expired && err instanceof CaRefusedError && /HTTP 401/.test(err.message))
        return enrolIn(
          req,
          `${expiry} and the CA refused to renew it with a token signed by its key (HTTP 401): its provisioner does not allow renewal after expiry (claim allowRenewalAfterExpiry), or the certificate was revoked`,
        );
      throw err;
    }
  };

  /** enrolInstead, as a renewal's answer: a new enrolment certifies the CSR's key. */
  const enrolIn = async (req: RenewRequest, why: string): Promise<Renewed> => ({
    chainPem: await enrolInstead(req, why),
    keptCurrentKey: false,
  });

  // ---- revocation --------------------------------------------------------------------------

  /**
   * `/1.0/revoke` over mTLS with the certificate itself (smallstep/certificates api/revoke.go): the
   * body's serial must be the client certificate's, and 0.19 implements passive revocation only
   * (recorded in the CA's database; from then on it refuses to renew the certificate,
   * authority/authorize.go authorizeRenew). A CA without a database answers 501; a certificate
   * revoked before, 400 "already revoked": done, so a retried leave is harmless.
   */
  const revoke = async (req: RevokeRequest): Promise<void> => {
    const trust = connectedTrust();
    const { leaf, serial } = revokedLeaf(req.certPem, req.kind);
    const cannot = `cannot revoke ${req.kind} (serial ${serial})`;
    const keyPem = req.keyPem;
    if (keyPem === undefined)
      throw new CaRefusedError(
        `${servers.description}: ${cannot}: its key is no longer on this node, and step-ca authenticates a revocation by the certificate's own key (mTLS): revoke it at the CA with a provisioner (step ca revoke), or let it expire`,
      );
    if (leaf.notAfter.getTime() <= ctx.clock.now())
      throw new CaRefusedError(
        `${servers.description}: ${cannot}: it expired on ${leaf.notAfter.toISOString()} and an expired certificate cannot authenticate the mTLS revocation`,
      );
    const noDatabase = (status: number, from: string) =>
      status === 501
        ? new NoRevocationError(
            `${from}: ${cannot}: the CA has no database to record revocations (ca.json "db"): revoke it there once it has one, or let it expire`,
          )
        : undefined;
    try {
      await call({
        method: "POST",
        path: "/1.0/revoke",
        body: () =>
          JSON.stringify({
            serial,
            reasonCode: REVOKE_REASON_CODES[req.reason],
            reason: req.reason,
            passive: true,
          }),
        // The whole chain: step-ca verifies a client certificate against its roots only
        // (ca/tls.go ClientCAs), and after a signer change the old intermediate is not its own.
        tls: { ...trust, cert: req.certPem, key: keyPem },
        what: `revoking ${req.kind} (serial ${serial})`,
        unauthorized: "the CA refused the certificate (HTTP 401)",
        special: noDatabase,
      });
    } catch (err) {
      if (err instanceof CaRefusedError && /is already revoked/.test(err.message)) return;
      throw err;
    }
  };

  return {
    get description() {
      return servers.description;
    },
    answered: () => servers.answered(),
    async fetchCaBundle(): Promise<CertInfo[]> {
      const { from, sent } = s.fingerprint ? await fetchRoot(s.fingerprint) : await fetchRoots();
      // An impostor at any one server stops the run: the others are not asked to cover for it.
      const trusted = authenticateCa(
        ctx.ca,
        sent,
        s,
        ctx.unsafeSkipCaVerification,
        from,
        ctx.log,
        ctx.pinned,
      );
      const rule = stepCaServerIdentity(s);
      tls = serverTrust(s, trusted, ctx.unsafeSkipCaVerification, rule);
      anchors = trusted;
      // `step ca roots`: every root the CA serves, over TLS that the authenticated root verifies.
      // A root joins the bundle only when the operator's settings anchor it (a pin given with
      // `node-join trust add` during a rotation: README "CA rotation"); any other is offered, never
      // trusted: whoever can answer for the CA's address (its TLS identity, stepCaServerIdentity,
      // is all that vouches for this answer) must not be able to add a root to every node.
      if (tls) {
        const { sent: served, tlsIssuer } = await fetchRoots(tls);
        const caFileCerts = s.caFile ? loadPemFile(s.caFile, "CA file") : [];
        const pinned = served.filter(
          (r) =>
            !trusted.some((t) => t.der.equals(r.der)) && anchorOf(s, r, caFileCerts) !== undefined,
        );
        anchors = [...trusted, ...pinned];
        offered = notTrusted(served, anchors);
        tls = serverTrust(s, anchors, ctx.unsafeSkipCaVerification, rule);
        // step-ca serves TLS with a certificate that the intermediate it signs leaves with issued
        // when it started (authority/tls.go GetTLSCertificate): that intermediate is the current
        // signer, the certificate /1.0/sign returns after the leaf, whichever root is first.
        const issuer = tlsIssuer && parseCert(derToPem(tlsIssuer));
        signer = issuer?.isCa && buildChain(issuer, [], anchors) ? issuer : undefined;
      } else offered = notTrusted(sent, trusted);
      return anchors;
    },
    offered: () => offered,
    currentSigner: () => signer,
    async prepare(reqs: PlannedRequest[]): Promise<void> {
      connectedTrust();
      const left = tokens().reserve(reqs);
      if (left.length === 0) return;
      // Finding the provisioner and checking its roots mints no token: a dry run may do it too.
      if (x5c) {
        await x5cProvisioner();
        return;
      }
      if (password() === undefined) throw missingSecret(left);
      // Decrypting now makes a wrong password stop the run before any CA sees a CSR.
      await provisionerKey();
    },
    sign,
    renew,
    revoke,
    revokesWithKey: true,
    requestedSans: stepCaRequestedSans,
  };
}

/** RFC 5280 5.3.1 CRLReason codes, step-ca's reasonCode (golang.org/x/crypto/ocsp). */
const REVOKE_REASON_CODES: Record<RevokeReason, number> = {
  unspecified: 0,
  keyCompromise: 1,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
};

/**
 * step's provisioner extension (smallstep/certificates authority/provisioner/extension.go
 * StepOIDProvisioner): every certificate step-ca signs through a provisioner carries it (JWK, X5C,
 * ACME, … newProvisionerExtensionOption), renewals keep it; the CA's own TLS certificate, which
 * step-ca makes for itself at start (authority/tls.go GetTLSCertificate), does not.
 */
export const STEP_PROVISIONER_OID = "1.3.6.1.4.1.37476.9000.64.1";

/**
 * step-ca's rule for its server's TLS certificate (common.ts ServerIdentityRule): no Kubernetes
 * identity, and step-ca's own, i.e. without the provisioner extension, since any client that
 * enrolled holds one with it for the names it asked for. A TLS-terminating proxy in front of
 * step-ca presents a certificate of its own: with --ca-tls-file naming the CA that issued it, that
 * file is its trust and only the first part of the rule applies (README "step-ca").
 */
export function stepCaServerIdentity(
  settings: Pick<CommonCaSettings, "tlsCaFile">,
): ServerIdentityRule {
  return (leaf) => {
    const node = notIssuedToANode(leaf);
    if (node !== undefined || settings.tlsCaFile !== undefined) return node;
    const oids = extensionOids(leaf.der);
    if (oids === undefined) return "its TLS certificate's extensions do not parse (RFC 5280 4.1)";
    if (oids.includes(STEP_PROVISIONER_OID))
      return `its TLS certificate "CN=${leaf.commonName}" was issued through a step-ca provisioner (extension ${STEP_PROVISIONER_OID}), as every enrolled client's is; step-ca's own has none (a TLS-terminating proxy needs a certificate of its own CA, given with --ca-tls-file)`;
    return undefined;
  };
}

/** How `renew` authenticates to a step-ca (status: README "Renewal paths"), by renewAuth. */
export function stepCaRenewalPath(settings: StepCaSettings): string {
  switch (settings.renewAuth ?? "auto") {
    case "mtls":
      return "mTLS with the current certificate";
    case "token":
      return "a token signed by the current key (key kept)";
    default:
      return "mTLS with the current certificate, else a token signed by its key";
  }
}
