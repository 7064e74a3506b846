// The one HTTP client of the agent: JSON over http or https, TLS verified against the pinned CA,
// no redirects, bounded bodies and per-request timeouts. Failures that may pass are TransientError.
// undici (its Agent and request API: agent/vendor/undici.ts) is loaded on the first request only:
// `renew` with nothing due (twice a day on every node) never talks to a CA.
type Undici = typeof import("../vendor/undici.js");
let undici: Promise<Undici> | undefined;
const loadUndici = (): Promise<Undici> => (undici ??= import("../vendor/undici.js"));
import {
  CaRefusedError,
  NodeJoinError,
  systemErrorText,
  VerificationError,
} from "../common/errors.js";
import { TransientError } from "./retry.js";

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
}

export interface HttpResponse {
  status: number;
  body: string;
}

export interface HttpRequest {
  method: "GET" | "POST";
  url: string;
  body?: string;
  timeoutMs: number;
  tls?: TlsTrust;
  /** Names the server in messages. */
  what: string;
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
  const { Agent } = await loadUndici();
  const isHttps = req.url.startsWith("https:");
  const dispatcher = new Agent({
    connect: isHttps
      ? {
          rejectUnauthorized: req.tls?.ca !== undefined,
          ...(req.tls?.ca ? { ca: req.tls.ca } : {}),
          ...(req.tls?.cert ? { cert: req.tls.cert, key: req.tls.key } : {}),
        }
      : {},
    connectTimeout: Math.min(req.timeoutMs, 30_000),
    headersTimeout: req.timeoutMs,
    bodyTimeout: req.timeoutMs,
  });
  const ac = new AbortController();
  const timer = setTimeout(
    () => ac.abort(new Error(`no complete answer within ${Math.round(req.timeoutMs / 1000)}s`)),
    req.timeoutMs,
  );
  try {
    const url = new URL(req.url);
    const res = await dispatcher.request({
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method: req.method,
      signal: ac.signal,
      headers: req.body !== undefined ? { "content-type": "application/json" } : {},
      ...(req.body !== undefined ? { body: req.body } : {}),
    });
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
    return { status: res.statusCode, body: Buffer.concat(chunks).toString("utf8") };
  } catch (err) {
    throw classify(err, req);
  } finally {
    clearTimeout(timer);
    dispatcher.destroy().catch(() => undefined);
  }
}

/** Drops an answer body unread; the abort error it then emits has nobody else to catch it. */
function discard(body: NodeJS.ReadableStream & { destroy(): void }): void {
  body.on("error", () => undefined);
  body.destroy();
}

function classify(err: unknown, req: HttpRequest): Error {
  if (err instanceof NodeJoinError || err instanceof TransientError) return err;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e.code ?? e.cause?.code ?? "";
  if (TLS_VERIFY_CODES.has(code)) {
    return new VerificationError(
      `${req.what}: TLS certificate of the server does not verify against the pinned CA (${code})`,
    );
  }
  // Without req.what: withRetry's final error and each retry line name the server already.
  if (code === "UND_ERR_ABORTED" || e.name === "AbortError") {
    return new TransientError(e.cause?.message ?? e.message);
  }
  return new TransientError(systemErrorText(err));
}
