// What every HTTP CA backend does the same way: retry until the run's deadline with a log line
// per failed attempt, and decide the TLS trust for the CA server once its CA is authenticated.
import { CaRefusedError } from "../common/errors.js";
import { throughProxy, withRetry } from "./retry.js";
import { parseCert, splitPemCertificates, type CertInfo } from "../pki/x509.js";
import type { BackendContext, CaSettings } from "./backend.js";
import type { TlsTrust } from "./http.js";
import { tlsTrustFor, trustConfigured } from "./trust.js";

/** Per-attempt ceiling, so one stuck connection cannot eat the whole --timeout. */
export const ATTEMPT_TIMEOUT_MS = 30_000;

/** Runs `attempt` until it succeeds, throws a non-transient error, or the run's deadline passes. */
export function retrying<T>(
  ctx: BackendContext,
  description: string,
  attempt: (timeoutMs: number) => Promise<T>,
): Promise<T> {
  return withRetry((remaining) => attempt(Math.min(remaining, ATTEMPT_TIMEOUT_MS)), {
    deadline: ctx.deadline,
    clock: ctx.clock,
    what: description,
    onRetry: (n, delay, err) =>
      ctx.log(
        `${description}: attempt ${n} failed${throughProxy(err)} (${err.message}); retrying in ${(delay / 1000).toFixed(1)}s`,
      ),
  });
}

/**
 * The TLS trust for every request after the CA was authenticated: its anchors (or the separate TLS
 * bundle). Undefined, i.e. unverified, only when the operator skipped verification and named no
 * anchor.
 */
export function serverTrust(
  settings: CaSettings,
  anchors: CertInfo[],
  unsafe: boolean,
): TlsTrust | undefined {
  if (unsafe && !trustConfigured(settings)) return undefined;
  return { ca: tlsTrustFor(settings, anchors) };
}

/** CA certificates from a server's answer; garbage there is the CA's fault (exit 4), not ours. */
export function parseCaPem(pem: string, description: string, what: string): CertInfo[] {
  try {
    return splitPemCertificates(pem, "CA certificate").map(parseCert);
  } catch (err) {
    throw new CaRefusedError(`${description}: ${what}: ${(err as Error).message}`);
  }
}
