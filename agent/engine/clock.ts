// Whether the host's clock can be right. Boards without a real-time clock (the Raspberry Pi and its
// kin) boot at 1970, or at the last shutdown (fake-hwclock, systemd-timesyncd's clock file), until
// NTP syncs; judging certificates by such a clock replaces valid ones or installs nothing. Two
// checks, both needing no trust in anyone's clock to accept a certificate:
//   - a floor: times the clock cannot be before (this binary's build, the newest NotBefore of the
//     installed certificates, the last run recorded, systemd-timesyncd's clock file, which
//     systemd-timesyncd(8) touches at every sync and shutdown);
//   - the CA's HTTP Date (RFC 9110 6.6.1), when a CA answered: off by more than clock.tolerance.
// The verdict only ever stops a run (exit 11); it never makes a certificate acceptable.
import { statSync } from "node:fs";
import { join } from "node:path";
import { childProcess } from "../common/builtins.js";
import { ClockNotSetError, TlsValidityError } from "../common/errors.js";
import { isoDate, shortHumanDuration } from "../common/time.js";
import { buildTime } from "../common/version.js";
import { readRole } from "../pki/installed.js";
import type { Role } from "../pki/roles.js";
import type { Layout } from "../store/layout.js";
import { readState } from "../store/state.js";

/** A time the host's clock cannot be before, and what says so (for the message). */
export interface Floor {
  at: Date;
  source: string;
}

export interface FloorInputs {
  buildTime: Date;
  /** NotBefore of each installed certificate, by its kind. */
  notBefores: { kind: string; notBefore: Date }[];
  /** The last run recorded in state.json (lastRenewal, each certificate's issuedAt). */
  lastRun?: Date;
  /** The modification time of systemd-timesyncd's clock file, where present. */
  timesyncClock?: Date;
}

/** The latest of the inputs: the clock cannot be before it. */
export function clockFloor(inputs: FloorInputs): Floor {
  const candidates: Floor[] = [{ at: inputs.buildTime, source: "node-join's build time" }];
  for (const n of inputs.notBefores)
    candidates.push({ at: n.notBefore, source: `the NotBefore of the installed ${n.kind}` });
  if (inputs.lastRun) candidates.push({ at: inputs.lastRun, source: "the last run (state file)" });
  if (inputs.timesyncClock)
    candidates.push({ at: inputs.timesyncClock, source: "systemd-timesyncd's clock file" });
  return candidates.reduce((a, b) => (b.at.getTime() > a.at.getTime() ? b : a));
}

/** The CA's time as its last answer's Date header gave it. */
export interface CaTime {
  date: Date;
  /** The CA as messages name it. */
  ca: string;
}

export type ClockVerdict =
  | { state: "ok"; now: Date }
  | { state: "behind-floor"; now: Date; floor: Floor }
  | { state: "skewed"; now: Date; ca: CaTime; skewMs: number; toleranceMs: number };

/**
 * ok, or why the clock is not set: more than `toleranceMs` before the floor (the floor's sources
 * are exact or backdated, the tolerance absorbs a CA that does not backdate), or more than
 * `toleranceMs` off the CA's Date.
 */
export function clockVerdict(
  now: Date,
  floor: Floor,
  ca: CaTime | undefined,
  toleranceMs: number,
): ClockVerdict {
  if (now.getTime() < floor.at.getTime() - toleranceMs)
    return { state: "behind-floor", now, floor };
  if (ca) {
    const skewMs = now.getTime() - ca.date.getTime();
    if (Math.abs(skewMs) > toleranceMs) return { state: "skewed", now, ca, skewMs, toleranceMs };
  }
  return { state: "ok", now };
}

/** One clause saying why the clock is not set, naming the host's time and what it is against. */
export function clockProblem(v: Exclude<ClockVerdict, { state: "ok" }>): string {
  const host = `the host's clock reads ${isoDate(v.now)}`;
  if (v.state === "behind-floor")
    return `${host}, before ${isoDate(v.floor.at)} (${v.floor.source}): the clock is not set`;
  const dir = v.skewMs < 0 ? "behind" : "ahead of";
  return `${host}, ${shortHumanDuration(Math.abs(v.skewMs))} ${dir} ${v.ca.ca} (its Date: ${isoDate(v.ca.date)}), over clock.tolerance ${shortHumanDuration(v.toleranceMs)}: the clock is not set`;
}

export function clockError(v: Exclude<ClockVerdict, { state: "ok" }>, what: string): Error {
  return new ClockNotSetError(`${clockProblem(v)}; ${what}`, clockOffsetMs(v));
}

/** The host's clock minus what the verdict checked it against (negative: behind). */
export function clockOffsetMs(v: Exclude<ClockVerdict, { state: "ok" }>): number {
  return v.state === "behind-floor" ? v.now.getTime() - v.floor.at.getTime() : v.skewMs;
}

/** The floor of this root: its certificates, state file, systemd-timesyncd's clock file. */
export function readFloor(role: Role, l: Layout): Floor {
  const notBefores = readRole(role, l).flatMap((r) =>
    r.installed ? [{ kind: r.kind.name, notBefore: r.installed.chain[0]!.notBefore }] : [],
  );
  const state = readState(l);
  const runs = [
    state.lastRenewal,
    ...Object.values(state.certificates).map((c) => c.issuedAt),
  ].flatMap((t) => {
    const d = t === undefined ? undefined : new Date(t);
    return d && !Number.isNaN(d.getTime()) ? [d] : [];
  });
  const lastRun = runs.reduce<Date | undefined>((a, b) => (!a || b > a ? b : a), undefined);
  const timesyncClock = mtime(join(l.root, "var/lib/systemd/timesync/clock"));
  return clockFloor({
    buildTime: buildTime(),
    notBefores,
    ...(lastRun ? { lastRun } : {}),
    ...(timesyncClock ? { timesyncClock } : {}),
  });
}

function mtime(path: string): Date | undefined {
  try {
    return statSync(path).mtime;
  } catch {
    return undefined;
  }
}

/**
 * Whether systemd says the clock is synchronised: systemd-timesyncd creates
 * /run/systemd/timesync/synchronized at its first sync (systemd-timesyncd.service(8)); on the
 * host itself, `timedatectl show -p NTPSynchronized --value` (the kernel's STA_UNSYNC, whichever
 * NTP client). Undefined: nothing says (no systemd, or under --root without the file).
 */
export function synchronised(l: Layout): boolean | undefined {
  if (mtime(join(l.root, "run/systemd/timesync/synchronized"))) return true;
  if (l.root !== "/") return undefined;
  try {
    const out = childProcess()
      .execFileSync("timedatectl", ["show", "-p", "NTPSynchronized", "--value"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
        timeout: 5000,
      })
      .trim();
    return out === "yes" ? true : out === "no" ? false : undefined;
  } catch {
    return undefined;
  }
}

/** How often a waiting join looks at the clock again. */
export const CLOCK_POLL_MS = 5000;

export interface ClockWait {
  /** join: wait up to timeoutMs for the clock; otherwise (renew, dry run) fail at once. */
  wait: boolean;
  dryRun: boolean;
  timeoutMs: number;
  log: (line: string) => void;
  sleep: (ms: number) => Promise<void>;
}

/**
 * Checks the clock with `check` and goes on once it is set. A run that does not wait fails at
 * once (exit 11); join logs one line and checks again every CLOCK_POLL_MS. The time waited is
 * counted in sleeps, not read off the clock that is being corrected: the jump that sets it must
 * not look like the timeout ending.
 */
export async function untilClockSet(
  check: () => Promise<ClockVerdict>,
  o: ClockWait,
): Promise<void> {
  let v = await check();
  if (v.state === "ok") return;
  const limit = shortHumanDuration(o.timeoutMs);
  if (o.dryRun) throw clockError(v, `join would wait up to ${limit} (--timeout) for it`);
  if (!o.wait) throw clockError(v, "nothing was judged or changed; retry once it is synchronised");
  o.log(`waiting up to ${limit} (--timeout) for the clock to be set (NTP): ${clockProblem(v)}`);
  for (let waited = 0; ; waited += CLOCK_POLL_MS) {
    if (waited >= o.timeoutMs)
      throw clockError(v, `gave up after ${limit} (--timeout); nothing was written`);
    await o.sleep(CLOCK_POLL_MS);
    v = await check();
    if (v.state === "ok") return;
  }
}

/** The verdict against each CA's last Date (CaBackend.lastDate): the first that is off, or ok. */
export function verdictAgainst(
  now: Date,
  floor: Floor,
  cas: { description: string; lastDate?: () => Date | undefined }[],
  toleranceMs: number,
): ClockVerdict {
  let v = clockVerdict(now, floor, undefined, toleranceMs);
  for (const b of cas) {
    if (v.state !== "ok") break;
    const date = b.lastDate?.();
    if (date) v = clockVerdict(now, floor, { date, ca: b.description }, toleranceMs);
  }
  return v;
}

/**
 * A CA server's TLS certificate expired or not yet valid by the host's clock, where the server's
 * Date (ca/http.ts) shows the host's clock off: the clock's verdict, to wait for or report in
 * place of the CA. Undefined: the error stands as it is (exit 5).
 */
export function tlsClockVerdict(
  err: unknown,
  now: Date,
  floor: Floor,
  toleranceMs: number,
): Exclude<ClockVerdict, { state: "ok" }> | undefined {
  if (!(err instanceof TlsValidityError) || !err.serverDate) return undefined;
  const v = clockVerdict(now, floor, { date: err.serverDate, ca: err.server }, toleranceMs);
  return v.state === "ok" ? undefined : v;
}
