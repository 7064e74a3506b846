// Every failure the CLI can report is one of these; the exit code travels with the error so that
// the CLI maps errors to exit codes in exactly one place (main.ts).

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

/** A pin mismatch or an issued certificate that is not what was asked for. */
export class VerificationError extends NodeJoinError {
  constructor(message: string) {
    super(message, ExitCode.verification);
  }
}

/** Reading or writing local files failed. */
export class LocalIoError extends NodeJoinError {
  constructor(message: string) {
    super(message, ExitCode.localIo);
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

/** Wraps a node:fs error into a LocalIoError that names the file. */
export function ioError(action: string, path: string, err: unknown): LocalIoError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const detail = code ? `${code}: ${errorMessage(err)}` : errorMessage(err);
  return new LocalIoError(`cannot ${action} ${path}: ${detail}`);
}
