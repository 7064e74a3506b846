// The one HTTP client of the agent: JSON over http or https, TLS verified against the pinned CA,
// no redirects, bounded bodies and per-request timeouts. Failures that may pass are TransientError.
// undici (its Agent and request API: agent/vendor/undici.ts) is loaded on the first request only:
// `renew` with nothing due (twice a day on every node) never talks to a CA.
import type { Socket } from "node:net";
import type { PeerCertificate, TLSSocket } from "node:tls";
type Undici = typeof import("../vendor/undici.js");
let undici: Promise<Undici> | undefined;
const loadUndici = (): Promise<Undici> => (undici ??= import("../vendor/undici.js"));
import {
  CaRefusedError,
  NodeJoinError,
  systemErrorText,
  VerificationError,
  TlsValidityError,
} from "../common/errors.js";
import { proxyRouteFor, type ProxyConfig, type ProxyRoute } from "./proxy.js";
import { TransientError } from "./retry.js";
import { ProxyAnswerError, tunnelConnector, type Connector } from "./tunnel.js";

/** Largest answer read from a CA; a larger one is refused without reading it all. */
export const MAX_BODY_BYTES = 1024 * 1024;

export interface TlsTrust {
  /**
   * PEM certificates that must anchor the server's chain; undefined: unverified (used only to fetch
   * a pinned CA).
   */
  ca?: string[];
  /** Client certificate chain and key for mTLS. */
  cert?: string;
  key?: string;
  /**
   * Judges the server's certificate (DER), once its chain verified and it names the host, as the
   * CA's own (common.ts ServerIdentityRule): a reason to refuse it, or undefined.
   */
  identity?: (der: Buffer) => string | undefined;
}

/** The handshake refused by TlsTrust.identity; `reason` is the rule's. */
class NotTheCaError extends Error {
  readonly code = "ERR_NODE_JOIN_NOT_THE_CA";
  constructor(readonly reason: string) {
    super(reason);
  }
}

export interface HttpResponse {
  status: number;
  body: string;
  /**
   * https: the DER of the certificate that issued the server's TLS certificate, as the handshake
   * chained it (the server sent it, or it is an anchor); absent when the server's certificate is
   * self-signed or the chain ends at it. step-ca serves TLS with a certificate its current
   * intermediate signed, which is how a node learns that signer without issuing
   * (ca/stepca/client.ts).
   */
  serverIssuer?: Buffer;
  /**
   * The answer's Date header (RFC 9110 6.6.1: an origin server with a clock sends one; CFSSL and
   * step-ca are Go servers, whose net/http always does): the CA's time, against which the host's
   * clock is checked (engine/clock.ts). Never used to accept a certificate.
   */
  date?: Date;
}

export interface HttpRequest {
  method: "GET" | "POST";
  url: string;
  body?: string;
  timeoutMs: number;
  tls?: TlsTrust;
  /** The proxies (proxy.ts): this request takes the one its URL's scheme and host call for. */
  proxy?: ProxyConfig;
  /** Names the server in messages. */
  what: string;
  /** The Authorization header (a secret: never in a message). */
  authorization?: string;
}

const TLS_VERIFY_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
]);

export async function httpRequest(req: HttpRequest): Promise<HttpResponse> {
  const { Agent, buildConnector } = await loadUndici();
  const identity = req.tls?.identity;
  // node:tls runs checkServerIdentity only on a chain that verified (tls.connect, onConnectSecure),
  // and a refusal there ends the handshake before a byte of the request is sent.
  // Not import(): the single binary's loader runs the agent without a dynamic-import callback for
  // built-ins (agent/sea/loader.ts); process.getBuiltinModule loads node:tls as require would.
  const nodeTls = identity ? process.getBuiltinModule("node:tls") : undefined;
  const isHttps = req.url.startsWith("https:");
  const url = new URL(req.url);
  const route = proxyRouteFor(url, req.proxy);
  const connectTimeout = Math.min(req.timeoutMs, 30_000);
  const tls = isHttps
    ? {
        rejectUnauthorized: req.tls?.ca !== undefined,
        // Unverified: an empty list, not the default store (which Node would load and parse).
        ca: req.tls?.ca ?? [],
        ...(req.tls?.cert ? { cert: req.tls.cert, key: req.tls.key } : {}),
        ...(identity && nodeTls
          ? {
              checkServerIdentity: (host: string, peer: PeerCertificate): Error | undefined => {
                const named = nodeTls.checkServerIdentity(host, peer);
                if (named) return named;
                const why = identity(peer.raw);
                return why === undefined ? undefined : new NotTheCaError(why);
              },
            }
          : {}),
      }
    : {};
  // The TLS socket of an https:// request tells who issued the server's certificate.
  let serverIssuer: Buffer | undefined;
  const observed =
    (connect: Connector): Connector =>
    (opts, cb) =>
      connect(opts, (err, socket) => {
        if (socket && isTls(socket)) serverIssuer = issuerOf(socket);
        cb(err, socket);
      });
  const tlsConnect = (): Connector => buildConnector({ ...tls, timeout: connectTimeout });
  // Through a proxy, https:// goes through a CONNECT tunnel (RFC 9110 9.3.6) and the TLS session
  // inside it is undici's own connector with these very options, end to end with the CA: the proxy
  // sees ciphertext, and the pin and verification are those of a direct connection. http:// goes
  // to the proxy in absolute form (RFC 9112 3.2.2), as curl sends it.
  const dispatcher = new Agent({
    connect: !isHttps
      ? tls
      : observed(route ? tunnelConnector(route, tlsConnect(), connectTimeout) : tlsConnect()),
    connectTimeout,
    headersTimeout: req.timeoutMs,
    bodyTimeout: req.timeoutMs,
  });
  const ac = new AbortController();
  const timer = setTimeout(
    () => ac.abort(new Error(`no complete answer within ${Math.round(req.timeoutMs / 1000)}s`)),
    req.timeoutMs,
  );
  try {
    const absolute = route !== undefined && !isHttps;
    const res = await dispatcher.request({
      origin: absolute ? route.url : url.origin,
      path: absolute ? url.href : `${url.pathname}${url.search}`,
      method: req.method,
      signal: ac.signal,
      headers: {
        ...(req.body !== undefined ? { "content-type": "application/json" } : {}),
        ...(req.authorization !== undefined ? { authorization: req.authorization } : {}),
        ...(absolute ? { host: url.host } : {}),
        ...(absolute && route.authorization ? { "proxy-authorization": route.authorization } : {}),
      },
      ...(req.body !== undefined ? { body: req.body } : {}),
    });
    if (absolute && (res.statusCode === 407 || (res.statusCode === 401 && route.authorization))) {
      discard(res.body);
      throw proxyAnswerError(
        new ProxyAnswerError(res.statusCode, "", `${req.method} ${url.href}`),
        req,
        route,
      );
    }
    if (res.statusCode >= 300 && res.statusCode < 400) {
      // Never followed: a redirect could send the CSR, and the auth token, to a host nobody pinned.
      discard(res.body);
      const location = res.headers.location;
      throw new CaRefusedError(
        `${req.what}: answered HTTP ${res.statusCode} redirecting to ${JSON.stringify(String(location ?? "nowhere"))}; redirects are not followed (give the CA's final URL)`,
      );
    }
    const length = Number(res.headers["content-length"] ?? 0);
    if (length > MAX_BODY_BYTES) {
      discard(res.body);
      throw new CaRefusedError(
        `${req.what}: answer of ${length} bytes is over the ${MAX_BODY_BYTES}-byte limit`,
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        discard(res.body);
        throw new CaRefusedError(`${req.what}: answer is over the ${MAX_BODY_BYTES}-byte limit`);
      }
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks).toString("utf8");
    if (absolute && isProxyFailure(res.statusCode, body)) {
      throw proxyAnswerError(
        new ProxyAnswerError(res.statusCode, "", `${req.method} ${url.href}`),
        req,
        route,
      );
    }
    const plainToTls = plainHttpToTls(req, res.statusCode, body);
    if (plainToTls) throw plainToTls;
    const date = dateHeader(res.headers.date);
    return {
      status: res.statusCode,
      body,
      ...(serverIssuer ? { serverIssuer } : {}),
      ...(date ? { date } : {}),
    };
  } catch (err) {
    const e = classify(err, req, route);
    // Whose clock is wrong: the server's Date, asked without trusting it (nothing but a GET of
    // its root is sent), lets the run name the host's clock instead of the CA (engine/clock.ts).
    if (e instanceof TlsValidityError) throw await withServerDate(e, req);
    throw e;
  } finally {
    clearTimeout(timer);
    dispatcher.destroy().catch(() => undefined);
  }
}

/** An HTTP-date (RFC 9110 5.6.7), or undefined when absent or not a date. */
function dateHeader(value: string | string[] | undefined): Date | undefined {
  if (typeof value !== "string") return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** `e` with the server's Date, where an unverified GET of its root answers with one. */
async function withServerDate(e: TlsValidityError, req: HttpRequest): Promise<TlsValidityError> {
  try {
    const res = await httpRequest({
      method: "GET",
      url: new URL("/", req.url).href,
      timeoutMs: Math.min(req.timeoutMs, 10_000),
      ...(req.proxy ? { proxy: req.proxy } : {}),
      what: req.what,
    });
    return res.date ? new TlsValidityError(e.message, e.server, res.date) : e;
  } catch {
    return e;
  }
}

const isTls = (s: Socket): s is TLSSocket => "getPeerCertificate" in s;

/** The DER of the issuer of a TLS peer's certificate (node:tls getPeerCertificate(true)). */
function issuerOf(socket: TLSSocket): Buffer | undefined {
  const peer = socket.getPeerCertificate(true);
  const issuer = peer.issuerCertificate as typeof peer.issuerCertificate | undefined;
  return issuer?.raw && !issuer.raw.equals(peer.raw) ? issuer.raw : undefined;
}

/** Drops an answer body unread; the abort error it then emits has nobody else to catch it. */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on("error", () => undefined);
  body.destroy();
}

/**
 * A proxy's own failure to reach the CA (RFC 9110 15.6.3 502, 15.6.5 504; squid and tinyproxy
 * also answer 500 or 503), told from the CA's own 5xx by its body: CFSSL and step-ca answer JSON.
 */
function isProxyFailure(status: number, body: string): boolean {
  return status >= 500 && !body.trimStart().startsWith("{");
}

function proxyAnswerError(err: ProxyAnswerError, req: HttpRequest, route: ProxyRoute): Error {
  const answer = `HTTP ${err.status}${err.statusText ? ` ${err.statusText}` : ""}`;
  // 407 (RFC 9110 15.5.8); tinyproxy answers wrong credentials with 401. A refusal: the same
  // credentials fail again on every retry.
  if (err.status === 407 || (err.status === 401 && route.authorization)) {
    return new CaRefusedError(
      route.credentialsSource
        ? `${req.what}: proxy ${route.url} refused the credentials from ${route.credentialsSource} (${answer})`
        : `${req.what}: proxy ${route.url} requires credentials (${answer}): give them in --proxy-credentials-file (config key proxy.credentialsFile) or NODE_JOIN_PROXY_CREDENTIALS`,
    );
  }
  if (err.status >= 500) {
    return new TransientError(`it answered ${answer} to ${err.target}`, route.url);
  }
  if (err.status >= 200 && err.status < 300) {
    // A tunnel that arrived with an answer in it: something answered for the CA.
    return new VerificationError(
      `${req.what}: proxy ${route.url} answered ${err.target} itself (${answer} with a body) instead of opening a tunnel: a captive portal or an impostor; refused`,
    );
  }
  return new CaRefusedError(`${req.what}: proxy ${route.url} refused ${err.target} (${answer})`);
}

/**
 * OpenSSL's reasons for a first record that is no TLS record at all (ssl/record/ssl3_record.c):
 * the peer answered in plain text. Not an alert (a TLS server refusing the handshake: a client
 * certificate it does not take), which may pass or has another cause.
 */
const NOT_TLS_CODES = new Set([
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "ERR_SSL_PACKET_LENGTH_TOO_LONG",
  "ERR_SSL_HTTP_REQUEST",
  "ERR_SSL_RECORD_LENGTH_MISMATCH",
]);

function classify(err: unknown, req: HttpRequest, route: ProxyRoute | undefined): Error {
  if (err instanceof NodeJoinError || err instanceof TransientError) return err;
  const refused = [err, (err as { cause?: unknown }).cause].find((e) => e instanceof NotTheCaError);
  if (refused)
    return new VerificationError(
      `${req.what}: ${refused.reason}: not the CA's own certificate; refused${route ? ` (through proxy ${route.url})` : ""}`,
    );
  if (route && err instanceof ProxyAnswerError) return proxyAnswerError(err, req, route);
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code ?? e.cause?.code ?? "";
  if (code === "CERT_NOT_YET_VALID" || code === "CERT_HAS_EXPIRED") {
    const what = code === "CERT_HAS_EXPIRED" ? "expired" : "not yet valid";
    return new TlsValidityError(
      `${req.what}: TLS certificate of the server is ${what} by the host's clock (${code})${route ? ` (through proxy ${route.url})` : ""}`,
      req.what,
    );
  }
  if (TLS_VERIFY_CODES.has(code)) {
    return new VerificationError(
      `${req.what}: TLS certificate of the server does not verify against the pinned CA (${code})${route ? ` (through proxy ${route.url})` : ""}`,
    );
  }
  const tlsMismatch = code.startsWith("ERR_SSL_") || code === "EPROTO";
  if (!route && req.url.startsWith("https:") && NOT_TLS_CODES.has(code)) {
    // What answered does not speak TLS (a plain-HTTP `cfssl serve` answers the ClientHello with
    // an HTTP error, which OpenSSL reads as a record of a wrong version): the same on every retry.
    return new CaRefusedError(
      `${req.what}: the server does not speak TLS (${code}): if it serves plain HTTP, give its URL as ${otherScheme(req.url, "http:")}`,
    );
  }
  if (route && req.url.startsWith("https:") && tlsMismatch) {
    // The tunnel opened, and what answered in it does not speak TLS: the proxy (a captive portal)
    // answered for the CA.
    return new VerificationError(
      `${req.what}: no TLS server answered through proxy ${route.url} (${systemErrorText(err)}): a captive portal or an impostor; refused`,
    );
  }
  // Without req.what: withRetry's final error and each retry line name the server already.
  if (code === "UND_ERR_ABORTED" || e.name === "AbortError") {
    return new TransientError(e.cause?.message ?? e.message, route?.url);
  }
  return new TransientError(systemErrorText(err), route?.url);
}

/** The server of `url` with the other scheme: what the mismatch messages suggest. */
function otherScheme(url: string, scheme: "http:" | "https:"): string {
  return `${scheme}//${new URL(url).host}`;
}

/**
 * The reverse mismatch: http:// to a TLS server. Go's net/http answers a plain request on a TLS
 * port with 400 "Client sent an HTTP request to an HTTPS server." (crypto/tls RecordHeaderError,
 * net/http server.go), which cfssl serve and step-ca both use. Not a refusal of the CA: it
 * never read the request.
 */
function plainHttpToTls(req: HttpRequest, status: number, body: string): Error | undefined {
  if (req.url.startsWith("https:") || status !== 400) return undefined;
  if (!/HTTP request to an HTTPS server/i.test(body)) return undefined;
  return new CaRefusedError(
    `${req.what}: the server speaks TLS and refused a plain HTTP request (HTTP 400 "${body.trim().slice(0, 60)}"): give its URL as ${otherScheme(req.url, "https:")}`,
  );
}

/**
 * A server that answered, but not as the CA API `api` answers (an HTML page, a 501 from a web
 * server, a body that is not JSON): a wrong URL or port, permanent on every retry.
 */
export function notCaApi(what: string, api: string, status: number, body: string): CaRefusedError {
  const start = body.trimStart();
  const shown = /^<(!doctype|html)/i.test(start)
    ? "an HTML page"
    : start === ""
      ? "an empty body"
      : JSON.stringify(start.slice(0, 80));
  return new CaRefusedError(
    `${what}: not a ${api} API: it answered HTTP ${status} with ${shown} (check the CA URL: scheme, host and port of the CA server)`,
  );
}
