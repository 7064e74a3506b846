// Exponential backoff with jitter until a deadline: a node that boots before its network or its
// CA is up still joins, and a fleet that boots at once does not hammer the CA in lockstep.
import type { Clock } from "../common/clock.js";
import { CaUnreachableError, errorMessage } from "../common/errors.js";

/** Thrown by an attempt that may succeed later (connection refused, timeout, 5xx). */
export class TransientError extends Error {
  /** The proxy the failed attempt went through (http://host:port), named in messages. */
  readonly proxy: string | undefined;
  constructor(message: string, proxy?: string) {
    super(message);
    this.proxy = proxy;
  }
}

/** "CA x unreachable through proxy http://127.0.0.1:3128" when the attempt went through one. */
export function throughProxy(err: Error): string {
  return err instanceof TransientError && err.proxy ? ` through proxy ${err.proxy}` : "";
}

export interface RetryOptions {
  /** Absolute time (clock.now() units) after which no new attempt starts. */
  deadline: number;
  clock: Clock;
  random?: () => number;
  baseMs?: number;
  capMs?: number;
  /** Names the server in the final error. */
  what: string;
  onRetry?: (attempt: number, delayMs: number, err: Error) => void;
}

export function backoffDelay(
  attempt: number,
  random: number,
  baseMs = 500,
  capMs = 30_000,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
  // "Equal jitter": never less than half the ceiling, so retries do not collapse to zero.
  return Math.round(ceiling / 2 + (random * ceiling) / 2);
}

export async function withRetry<T>(
  attempt: (remainingMs: number) => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  const random = opts.random ?? Math.random;
  let lastError: Error | undefined;
  for (let n = 0; ; n++) {
    const remaining = opts.deadline - opts.clock.now();
    if (remaining <= 0) break;
    try {
      return await attempt(remaining);
    } catch (err) {
      if (!(err instanceof TransientError)) throw err;
      lastError = err;
      const delay = Math.min(
        backoffDelay(n, random(), opts.baseMs, opts.capMs),
        opts.deadline - opts.clock.now(),
      );
      if (delay <= 0) break;
      opts.onRetry?.(n + 1, delay, err);
      await opts.clock.sleep(delay);
    }
  }
  throw new CaUnreachableError(
    `${opts.what} unreachable${lastError ? throughProxy(lastError) : ""}: ${lastError ? errorMessage(lastError) : "timed out before the first attempt"}`,
  );
}
