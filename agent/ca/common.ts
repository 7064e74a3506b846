// What every HTTP CA backend does the same way: ask the CA's servers in order and retry until the
// run's deadline with a log line per failed attempt, and decide the TLS trust for the CA servers
// once the CA is authenticated.
import { CaRefusedError } from "../common/errors.js";
import { throughProxy, TransientError, withRetry } from "./retry.js";
import { kubernetesIdentity } from "../pki/certs.js";
import {
  buildChain,
  derToPem,
  parseCert,
  splitPemCertificates,
  type CertInfo,
} from "../pki/x509.js";
import type { BackendContext, CommonCaSettings } from "./backend.js";
import type { TlsTrust } from "./http.js";
import { authenticateCa, tlsTrustFor, trustConfigured } from "./trust.js";

/** Per-attempt ceiling, so one stuck connection cannot eat the whole --timeout. */
export const ATTEMPT_TIMEOUT_MS = 30_000;

/** A configured URL as requests append paths to it and messages name it. */
export function baseUrl(url: string): string {
  return url.replace(/\/+$/, "");
}

/**
 * The servers of one CA, each a full instance of the same CA, in the order a request asks them:
 * the one that last answered (in this run, or in the last one: the state file) first, the others
 * in their configured order. This is the "ordered" strategy of cfssl's client group
 * (api/client/group.go, cloudflare/cfssl#258) with the last success remembered.
 */
export class CaServers {
  private first: string;
  private last: string | undefined;
  private readonly failure = new Map<string, string>();

  /** `name(server)` describes the CA at one server, `name()` the CA as a whole. */
  constructor(
    readonly urls: readonly string[],
    preferred: string | undefined,
    private readonly name: (server?: string) => string,
  ) {
    if (urls.length === 0) throw new Error("a CA without a URL");
    // A remembered URL no longer configured is ignored: the operator removed that server.
    this.first = preferred !== undefined && urls.includes(preferred) ? preferred : urls[0]!;
  }

  /** Every URL once, the one to ask first leading. */
  order(): string[] {
    return [this.first, ...this.urls.filter((u) => u !== this.first)];
  }

  answeredBy(url: string): void {
    this.first = url;
    this.last = url;
  }

  failed(url: string, why: string): void {
    this.failure.set(url, why);
  }

  /** "http://a:8888 connection refused; http://b:8888 HTTP 503": the last failure of each. */
  failures(order: string[]): string {
    return order
      .filter((u) => this.failure.has(u))
      .map((u) => `${baseUrl(u)} ${this.failure.get(u)}`)
      .join("; ");
  }

  /** The URL that last answered in this run, if any did. */
  answered(): string | undefined {
    return this.last;
  }

  /** "CA kubernetes (cfssl http://b:8888)": the CA at this server. */
  describe(url: string): string {
    return this.name(baseUrl(url));
  }

  /** The CA at the server asked first: the one that last answered, before any the first. */
  get description(): string {
    return this.describe(this.first);
  }

  /** The CA as a whole: its one server, or "CA kubernetes (cfssl)" for several. */
  get whole(): string {
    return this.urls.length === 1 ? this.describe(this.urls[0]!) : this.name();
  }
}

export type RetryContext = Pick<BackendContext, "deadline" | "clock" | "log">;

/**
 * One pass over the servers: the first that answers wins and is asked first from then on. A
 * connection error, timeout or 5xx (TransientError) moves on to the next; anything else (a
 * refusal, a CA that fails its pin or TLS check) ends the request at once, unasked the others: they
 * are instances of the same CA and would refuse alike, and none may cover for an impostor.
 */
async function askInTurn<T>(
  ctx: RetryContext,
  servers: CaServers,
  attempt: (url: string, timeoutMs: number) => Promise<T>,
): Promise<T> {
  const order = servers.order();
  for (const [i, url] of order.entries()) {
    const remaining = ctx.deadline - ctx.clock.now();
    if (i > 0 && remaining <= 0) break;
    try {
      const answer = await attempt(url, Math.min(remaining, ATTEMPT_TIMEOUT_MS));
      servers.answeredBy(url);
      return answer;
    } catch (err) {
      if (!(err instanceof TransientError) || order.length === 1) throw err;
      servers.failed(url, `${err.message}${err.proxy ? ` (through proxy ${err.proxy})` : ""}`);
      const next = order[i + 1];
      if (next !== undefined)
        ctx.log(`${servers.describe(url)}: ${err.message}; trying ${baseUrl(next)}`);
    }
  }
  // A pass the deadline cut short names the servers it did not reach by their last failure.
  throw new TransientError(servers.failures(order));
}

/**
 * Runs `attempt` against the CA's servers until one succeeds, one throws a non-transient error,
 * or the run's deadline passes; a pass over all of them that failed is one backoff step.
 */
export function retrying<T>(
  ctx: RetryContext,
  servers: CaServers,
  attempt: (url: string, timeoutMs: number) => Promise<T>,
): Promise<T> {
  const what = servers.whole;
  return withRetry(() => askInTurn(ctx, servers, attempt), {
    deadline: ctx.deadline,
    clock: ctx.clock,
    what,
    onRetry: (n, delay, err) =>
      ctx.log(
        `${what}: attempt ${n} failed${throughProxy(err)} (${err.message}); retrying in ${(delay / 1000).toFixed(1)}s`,
      ),
  });
}

/**
 * A CA type's rule for the CA server's own TLS certificate, once its chain verified against the
 * anchors and it names the URL's host: what makes it not the CA's (a reason), or undefined. The
 * chain alone is not enough: every node holds a certificate of the same PKI for the addresses it
 * asked for (a kubelet serving certificate joined with --ip <the CA's address>).
 */
export type ServerIdentityRule = (leaf: CertInfo) => string | undefined;

/**
 * Every CA type's rule: the server's certificate carries no Kubernetes identity of the certificate
 * table (pki/certs.ts kubernetesIdentity): those are issued to nodes and cluster components.
 */
export const notIssuedToANode: ServerIdentityRule = (leaf) => {
  const id = kubernetesIdentity(leaf);
  return (
    id &&
    `its TLS certificate "CN=${leaf.commonNames.join("+CN=")}" carries ${id}, an identity the cluster's CAs issue to nodes and cluster components, never to a CA server`
  );
};

/**
 * The TLS trust for every request after the CA was authenticated: its anchors (or the separate TLS
 * bundle), and `rule` for the server's own certificate. Undefined, i.e. unverified, only when the
 * operator skipped verification and named no anchor.
 */
export function serverTrust(
  settings: CommonCaSettings,
  anchors: CertInfo[],
  unsafe: boolean,
  rule: ServerIdentityRule,
): TlsTrust | undefined {
  if (unsafe && !trustConfigured(settings)) return undefined;
  return { ca: tlsTrustFor(settings, anchors), identity: (der) => rule(parseCert(derToPem(der))) };
}

/**
 * The first step of every backend: what a CA server sent, checked against the node's anchors
 * (authenticateCa), and the TLS trust every later request to that CA runs under. An impostor at
 * any one server stops the run: the others are not asked to cover for it.
 */
export function authenticateServer(
  ctx: BackendContext,
  sent: CertInfo[],
  from: string,
  rule: ServerIdentityRule,
): { anchors: CertInfo[]; tls: TlsTrust | undefined } {
  const unsafe = ctx.unsafeSkipCaVerification;
  const anchors = authenticateCa(ctx.ca, sent, ctx.settings, unsafe, from, ctx.log, ctx.pinned);
  return { anchors, tls: serverTrust(ctx.settings, anchors, unsafe, rule) };
}

/**
 * What a CA server sent that the trusted certificates neither hold nor vouch for (a signature of
 * one of them): CaBackend.offered.
 */
export function notTrusted(sent: CertInfo[], trusted: CertInfo[]): CertInfo[] {
  return sent.filter(
    (c) => !trusted.some((t) => t.der.equals(c.der)) && !buildChain(c, [], trusted),
  );
}

/** CA certificates from a server's answer; garbage there is the CA's fault (exit 4), not ours. */
export function parseCaPem(pem: string, description: string, what: string): CertInfo[] {
  try {
    return splitPemCertificates(pem, "CA certificate").map(parseCert);
  } catch (err) {
    throw new CaRefusedError(`${description}: ${what}: ${(err as Error).message}`);
  }
}

/** A certificate to revoke: its leaf, and its serial as both CAs' revoke endpoints take it. */
export interface RevokedLeaf {
  leaf: CertInfo;
  /**
   * Decimal, as Go's big.Int prints it: CFSSL's certificate database keys on it (certdb
   * CertificateRecord.Serial, cloudflare/cfssl signer/local), step-ca compares it with the client
   * certificate's SerialNumber.String() (smallstep/certificates api/revoke.go).
   */
  serial: string;
}

/** The leaf of a revocation request: of a chain given, its first certificate only. */
export function revokedLeaf(certPem: string, kind: string): RevokedLeaf {
  const leaf = parseCert(splitPemCertificates(certPem, `${kind} certificate`)[0]!);
  return { leaf, serial: BigInt(`0x${leaf.serial}`).toString(10) };
}
