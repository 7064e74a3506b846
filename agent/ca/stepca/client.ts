// Talking to a step-ca (smallstep/certificates ca/, api/; 0.19 tested): one request retried over
// the CA's servers with step-ca's error bodies mapped, the root by fingerprint from /root/<fp>,
// every root from /roots, and the rule for the CA server's own TLS certificate. `connect` returns
// the Connection that enrolment, renewal and revocation are handed.
import { CaRefusedError, UsageError, VerificationError } from "../../common/errors.js";
import { extensionOids } from "../../pki/der.js";
import { buildChain, derToPem, parseCert, type CertInfo } from "../../pki/x509.js";
import type { BackendContext, CommonCaSettings } from "../backend.js";
import type { StepCaSettings } from "../stepca-settings.js";
import {
  baseUrl,
  CaServers,
  notIssuedToANode,
  notTrusted,
  parseCaPem,
  retrying,
  authenticateServer,
  serverTrust,
  type ServerIdentityRule,
} from "../common.js";
import { httpRequest, notCaApi, type TlsTrust } from "../http.js";
import { probeRequest, tlsChain, type Probed, type ProbeRequest } from "../probe.js";
import { TransientError } from "../retry.js";
import { anchorOf, loadPemFile } from "../trust.js";

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The "message" of a step-ca error body {status, message}, if it is one. */
export function messageOf(body: string): string | undefined {
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

export interface Call {
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

/** The answer of the server that answered, and `Call.what` at that server as messages name it. */
export interface Answered {
  answer: Json;
  what: string;
  from: string;
  /** The issuer of the server's TLS certificate (HttpResponse.serverIssuer), where known. */
  tlsIssuer?: Buffer;
}

/** One step-ca: its servers, how it is configured, and the run's context. */
export interface StepCaClient {
  ctx: BackendContext<StepCaSettings>;
  settings: StepCaSettings;
  servers: CaServers;
  /** The CA's flag prefix ("" or "etcd-", "front-proxy-"): messages name its flags. */
  prefix: string;
  call(c: Call): Promise<Answered>;
  /** The Date header of the last answer (CaBackend.lastDate). */
  lastDate(): Date | undefined;
}

export function createClient(ctx: BackendContext<StepCaSettings>): StepCaClient {
  const settings = ctx.settings;
  const servers = new CaServers(
    settings.urls,
    ctx.preferredUrl,
    (server) => `CA ${ctx.ca.display} (step-ca${server ? ` ${server}` : ""})`,
  );
  for (const url of settings.urls)
    if (!url.startsWith("https:"))
      throw new UsageError(
        `${servers.describe(url)}: step-ca answers over HTTPS only: give an https:// CA URL`,
      );
  let lastDate: Date | undefined;
  const call = (c: Call): Promise<Answered> =>
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
      if (res.date) lastDate = res.date;
      // A status the request knows better (e.g. 501 from /1.0/revoke) before the generic mapping.
      const known = res.status >= 300 ? c.special?.(res.status, from, res.body) : undefined;
      if (known) throw known;
      // step-ca answers its errors as JSON {status, message}; a page or a bare 501 is another
      // server at this URL. 500, 502-504 without JSON stay transient: a proxy's.
      const transient = [500, 502, 503, 504].includes(res.status);
      if (res.status >= 300 && !transient && !res.body.trimStart().startsWith("{"))
        throw notCaApi(from, "step-ca", res.status, res.body);
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
  return { ctx, settings, servers, prefix: ctx.ca.flagPrefix, call, lastDate: () => lastDate };
}

/** What fetchCaBundle established; every later request is made with it. */
export interface Connection {
  /** The authenticated roots, then the ones the operator's settings anchor. */
  anchors: CertInfo[];
  /** The trust for the CA server's TLS certificate; undefined: --unsafe-skip-ca-verification. */
  tls: TlsTrust | undefined;
  /** The intermediate that signs new leaves (CaBackend.currentSigner), where known. */
  signer: CertInfo | undefined;
  /** What the server sent that no anchor names (CaBackend.offered). */
  offered: CertInfo[];
}

/** The CA certificates a server sent, and the CA at that server as messages name it. */
interface Fetched {
  from: string;
  sent: CertInfo[];
  tlsIssuer?: Buffer;
}

/** step's bootstrap: fetch the root unverified, then check its fingerprint (authenticateCa). */
async function fetchRoot(client: StepCaClient, fingerprint: string): Promise<Fetched> {
  const notFound = (status: number, from: string) =>
    status === 404
      ? new VerificationError(
          `${from}: the CA has no root with fingerprint ${fingerprint}: wrong --${client.prefix}ca-fingerprint or wrong CA URL`,
        )
      : undefined;
  const { answer, what, from } = await client.call({
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
}

async function fetchRoots(client: StepCaClient, trust?: TlsTrust): Promise<Fetched> {
  const { answer, what, from, tlsIssuer } = await client.call({
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
}

/** Fetches and authenticates the CA's roots (CaBackend.fetchCaBundle). */
export async function connect(client: StepCaClient): Promise<Connection> {
  const { ctx, settings: s } = client;
  const { from, sent } = s.fingerprint
    ? await fetchRoot(client, s.fingerprint)
    : await fetchRoots(client);
  const rule = stepCaServerIdentity(s);
  const { anchors: trusted, tls } = authenticateServer(ctx, sent, from, rule);
  if (!tls) return { anchors: trusted, tls, signer: undefined, offered: notTrusted(sent, trusted) };
  // `step ca roots`: every root the CA serves, over TLS that the authenticated root verifies.
  // A root joins the bundle only when the operator's settings anchor it (a pin given with
  // `node-join trust add` during a rotation: README "CA rotation"); any other is offered, never
  // trusted: whoever can answer for the CA's address (its TLS identity, stepCaServerIdentity,
  // is all that vouches for this answer) must not be able to add a root to every node.
  const { sent: served, tlsIssuer } = await fetchRoots(client, tls);
  const caFileCerts = s.caFile ? loadPemFile(s.caFile, "CA file") : [];
  const pinned = served.filter(
    (r) => !trusted.some((t) => t.der.equals(r.der)) && anchorOf(s, r, caFileCerts) !== undefined,
  );
  const anchors = [...trusted, ...pinned];
  // step-ca serves TLS with a certificate that the intermediate it signs leaves with issued
  // when it started (authority/tls.go GetTLSCertificate): that intermediate is the current
  // signer, the certificate /1.0/sign returns after the leaf, whichever root is first.
  const issuer = tlsIssuer && parseCert(derToPem(tlsIssuer));
  return {
    anchors,
    tls: serverTrust(s, anchors, ctx.unsafeSkipCaVerification, rule),
    signer: issuer?.isCa && buildChain(issuer, [], anchors) ? issuer : undefined,
    offered: notTrusted(served, anchors),
  };
}

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

/**
 * `node-join probe` for step-ca: every root from /roots, unverified as `step ca bootstrap` fetches
 * the root before it checks the fingerprint (smallstep/certificates ca/bootstrap.go), and the TLS
 * chain, whose intermediate signs the leaves (authority/tls.go).
 */
export async function probeStepCa(p: ProbeRequest): Promise<Probed> {
  const what = `step-ca ${p.url}`;
  const res = await probeRequest(p, what, "/roots", "GET");
  if (res.status >= 300 && !res.body.trimStart().startsWith("{"))
    throw notCaApi(what, "step-ca", res.status, res.body);
  if (res.status >= 300) throw stepCaRefusal(res.status, res.body, `${what} roots`, "HTTP 401");
  const answer = parseAnswer(res.body, `${what} roots`);
  const pems = Array.isArray(answer.crts)
    ? answer.crts.filter((c): c is string => typeof c === "string")
    : [];
  if (pems.length === 0) throw notCaApi(what, "step-ca", res.status, res.body);
  return {
    served: pems.flatMap((pem) => parseCaPem(pem, what, "roots answer")),
    tls: await tlsChain(p.url, p.timeoutMs, what),
  };
}
