// Every failure the CLI can report is one of these; the exit code travels with the error so that
// the CLI maps errors to exit codes in exactly one place (main.ts).
import { getSystemErrorMap } from "node:util";

export const ExitCode = {
  ok: 0,
  other: 1,
  usage: 2,
  caUnreachable: 3,
  caRefused: 4,
  verification: 5,
  localIo: 6,
  locked: 7,
  /** status: a certificate or CA needs attention (the table is still printed). */
  attention: 8,
  /** status: node-join never joined this root. */
  notJoined: 9,
  /** leave --revoke: a certificate could not be revoked; nothing was removed (--force leaves). */
  notRevoked: 10,
  /**
   * The host's clock is not set: before what it cannot be before (engine/clock.ts clockFloor), or
   * off from the CA's HTTP Date by more than clock.tolerance. A later run, once NTP synced, can
   * succeed: the renewal timer retries.
   */
  clockNotSet: 11,
  /**
   * status: a join did not finish yet: its last failure is recorded, and node-join-join.service
   * retries it where a later attempt can fix what stopped it (ops/join-retry.ts).
   */
  joinPending: 12,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class NodeJoinError extends Error {
  readonly exitCode: ExitCodeValue;
  constructor(message: string, exitCode: ExitCodeValue = ExitCode.other) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad flag, bad config key or value, missing required setting. */
export class UsageError extends NodeJoinError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** The CA could not be reached (connection refused, DNS, timeout, 5xx) within the timeout. */
export class CaUnreachableError extends NodeJoinError {
  constructor(message: string) {
    super(message, ExitCode.caUnreachable);
  }
}

/** The CA answered and said no (bad auth key, unknown profile, policy). Retrying cannot help. */
export class CaRefusedError extends NodeJoinError {
  constructor(message: string) {
    super(message, ExitCode.caRefused);
  }
}

/**
 * A renewal with the current certificate that cannot succeed where an enrolment could: refused
 * after expiry (step-ca's allowRenewalAfterExpiry), or impossible without reaching the CA (an
 * expired certificate cannot authenticate mTLS). `why` says what happened; the engine enrols the
 * kind again when an enrolment secret is configured (engine/issue.ts), else reports this.
 */
export class RenewalRefusedError extends CaRefusedError {
  constructor(
    readonly description: string,
    readonly why: string,
  ) {
    super(`${description}: ${why}, so it cannot be renewed`);
  }
}

/**
 * The CA has no revocation path at all (CFSSL without a certificate database, step-ca without a
 * database): a renewal keeps the superseded certificate's serial recorded instead of retrying.
 */
export class NoRevocationError extends CaRefusedError {}

/** A pin mismatch or an issued certificate that is not what was asked for. */
export class VerificationError extends NodeJoinError {
  constructor(message: string) {
    super(message, ExitCode.verification);
  }
}

/**
 * The host's clock cannot be right (ExitCode.clockNotSet): nothing was judged by it, nothing
 * written. The message names the host's time and what it was checked against.
 */
export class ClockNotSetError extends NodeJoinError {
  constructor(
    message: string,
    /**
     * The host's clock minus what it was checked against (its floor, or the CA's Date), in ms:
     * negative when behind. For the metrics textfile (node_join_clock_offset_seconds).
     */
    readonly offsetMs?: number,
  ) {
    super(message, ExitCode.clockNotSet);
  }
}

/**
 * The CA server's TLS certificate is expired or not yet valid by the host's clock. `serverDate`:
 * the Date header of an unverified request to the same server, made only to tell whose clock is
 * wrong (engine/clock.ts): it never lets a certificate through, only names the clock instead.
 */
export class TlsValidityError extends VerificationError {
  constructor(
    message: string,
    /** The server as messages name it. */
    readonly server: string,
    readonly serverDate?: Date,
  ) {
    super(message);
  }
}

/** Reading or writing local files failed. */
export class LocalIoError extends NodeJoinError {
  /** The system error code behind it (EACCES, ENOENT, …), for the CLI's hint. */
  readonly errno: string | undefined;
  constructor(message: string, errno?: string) {
    super(message, ExitCode.localIo);
    this.errno = errno;
  }
}

/** leave --revoke: a CA cannot revoke, or refused or did not answer; nothing was removed. */
export class NotRevokedError extends NodeJoinError {
  constructor(message: string) {
    super(message, ExitCode.notRevoked);
  }
}

/** Another node-join run holds the lock. */
export class LockedError extends NodeJoinError {
  constructor(message: string) {
    super(message, ExitCode.locked);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * Descriptions of codes that are not libuv errors (getaddrinfo's own), worded as libuv words its
 * own.
 */
const OTHER_CODES: Readonly<Record<string, string>> = {
  ENOTFOUND: "no such host",
  EAI_AGAIN: "temporary failure in name resolution",
};

/**
 * A system error as one clause, `permission denied (EACCES)`: Node's messages repeat the code
 * (`EACCES: permission denied, open '/x'`, `connect ECONNREFUSED 127.0.0.1:1`) and the caller
 * already names the file or server. The description is libuv's (util.getSystemErrorMap).
 */
export function systemErrorText(err: unknown): string {
  const e = err as (NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException }) | undefined;
  const code = e?.code ?? e?.cause?.code;
  if (!code) return errorMessage(err);
  const errno = e?.code ? e.errno : e?.cause?.errno;
  const known = typeof errno === "number" ? getSystemErrorMap().get(errno) : undefined;
  if (known && known[0] === code) return `${known[1]} (${code})`;
  if (OTHER_CODES[code]) return `${OTHER_CODES[code]} (${code})`;
  // Another code (undici's UND_ERR_*, OpenSSL's): its message without the code in it.
  const message = errorMessage(e?.code ? err : e?.cause)
    .split(code)
    .join("")
    .replace(/^[\s:]+|[\s:,]+$/g, "");
  return message ? `${message} (${code})` : code;
}

/** Wraps a node:fs error into a LocalIoError that names the file. */
export function ioError(action: string, path: string, err: unknown): LocalIoError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return new LocalIoError(`cannot ${action} ${path}: ${systemErrorText(err)}`, code);
}

/** Codes a run without root's rights meets on root's files. */
const DENIED = new Set(["EACCES", "EPERM"]);

/** The hint for a local error seen by a run that is not root, or undefined. */
export function permissionHint(err: unknown, isRoot: boolean): string | undefined {
  if (isRoot) return undefined;
  const code =
    err instanceof LocalIoError ? err.errno : (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && DENIED.has(code) ? "run as root, or use --root" : undefined;
}
