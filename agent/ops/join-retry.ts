// A join that cannot finish at first boot is not lost. Where what stopped it is something a later
// attempt can fix (the clock not set yet, the CA or the network down), join leaves a oneshot unit,
// node-join-join.service, that tries again on its own, after the network and the clock, until the
// node joins; the run that joins removes it. A refusal that needs a person (a wrong pin, a refused
// auth key, a usage error) ends the retries instead: systemd does not restart on those codes and
// join disables the unit. The unit runs `join --config <state dir>/join-pending.yaml`, the first
// attempt's settings as join persists them (the caller renders them: config/sources.ts
// renderConfig): paths of secret files, never a secret (none is in argv or in the unit).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, NodeJoinError, errorMessage } from "../common/errors.js";
import { inspect, readNoFollow, removeIfExists, writeFileAtomic } from "../store/fsio.js";
import { hostPath, type Layout } from "../store/layout.js";
import {
  RENEW_ENVIRONMENT_FILE,
  UNSAFE_ENV,
  checkExec,
  enableLink,
  systemdCommand,
  writeIfChanged,
  type TimerEnv,
} from "./timer.js";

export const JOIN_SERVICE = "node-join-join.service";

/**
 * ExitCode.clockNotSet (issue 22: "the host's clock is not set", ClockNotSetError), added to
 * common/errors.ts with join's wait for the clock; named here so the retry does not wait for it.
 */
export const CLOCK_NOT_SET = ExitCode.clockNotSet;

/**
 * What a later attempt can fix without a person: the CA or the network not reachable yet (3,
 * proxies included), another node-join holding the lock (7), the clock not set yet (11).
 */
export const RETRYABLE: readonly number[] = [
  ExitCode.caUnreachable,
  ExitCode.locked,
  CLOCK_NOT_SET,
];

/**
 * The codes systemd must not restart on (RestartPreventExitStatus=, systemd.service(5)): what
 * needs a person. 1 is an unforeseen failure, 2 a wrong flag or setting, 4 the CA's refusal (auth
 * key, profile, provisioner), 5 a pin or verification failure, 6 a local file problem.
 */
export const NEEDS_A_PERSON: readonly number[] = [
  ExitCode.other,
  ExitCode.usage,
  ExitCode.caRefused,
  ExitCode.verification,
  ExitCode.localIo,
];

/**
 * The wait between attempts (RestartSec=). Each attempt already waits up to its --timeout for the
 * CA and the clock; this only keeps a CA that refuses connections at once from being asked in a
 * tight loop.
 */
export const RETRY_DELAY = "2min";

/**
 * How long one attempt may take. A oneshot has no start timeout by default (systemd.service(5)
 * TimeoutStartSec=); an hour holds join's waits for the clock and the CA (each up to --timeout).
 */
export const JOIN_TIMEOUT = "1h";

const pendingConfig = (l: Layout) => join(l.stateDir, "join-pending.yaml");
const pendingRecord = (l: Layout) => join(l.stateDir, "join-pending.json");
const unitFile = (l: Layout) => join(l.systemdDir, JOIN_SERVICE);
const wantsLink = (l: Layout) => join(l.systemdDir, "multi-user.target.wants", JOIN_SERVICE);
const LINK_TARGET = `/etc/systemd/system/${JOIN_SERVICE}`;

/**
 * The retry unit. Ordered after network-online.target (pulled in: systemd.special(7) asks the
 * units that need the network up to want it) and after time-sync.target, which is only a real
 * wait where systemd-time-wait-sync.service is enabled (systemd-time-wait-sync.service(8)); join
 * waits for the clock itself, up to --timeout, either way. Restart=on-failure on a oneshot needs
 * systemd 244 or newer (Debian 11 has 247). StartLimitIntervalSec=0: no start limit, it retries
 * until the node joins. Once joined, the kubelet is enabled and started, as the cloud-init examples
 * and the PXE hook do after their join ("-": a host without the unit is not a failed join).
 */
export function renderJoinService(exec: readonly string[], l: Layout): string {
  checkExec(exec, "systemd");
  const config = hostPath(pendingConfig(l), l.root);
  return `# Installed by node-join join: a join that could not finish yet; removed once the node joins.
[Unit]
Description=Join this node to its cluster (node-join), retried until it joins
After=network-online.target time-sync.target
Wants=network-online.target
ConditionPathExists=${config}
StartLimitIntervalSec=0

[Service]
Type=oneshot
ExecStart=${systemdCommand([...exec, "join", "--config", config])}
ExecStartPost=-/bin/systemctl enable --now --no-block kubelet.service
Restart=on-failure
RestartSec=${RETRY_DELAY}
RestartPreventExitStatus=${NEEDS_A_PERSON.join(" ")}
TimeoutStartSec=${JOIN_TIMEOUT}
EnvironmentFile=-${RENEW_ENVIRONMENT_FILE}
UnsetEnvironment=${UNSAFE_ENV.join(" ")}
LimitCORE=0
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
`;
}

/** The last failed attempt of a join not finished yet (join-pending.json). */
export interface JoinPending {
  /** The first failed attempt, ISO 8601. */
  since: string;
  /** The last one. */
  last: string;
  attempts: number;
  exitCode: number;
  error: string;
  /** The unit tries again on its own; false: a person must fix what the error says. */
  retrying: boolean;
}

/** The record of a pending join under this root, if there is one (and it reads). */
export function readJoinPending(l: Layout): JoinPending | undefined {
  try {
    return JSON.parse(readNoFollow(pendingRecord(l)).toString("utf8")) as JoinPending;
  } catch {
    return undefined;
  }
}

/** status's one line for a pending join (exit 12). */
export function joinPendingLine(p: JoinPending): string {
  const why = `${p.error} (exit ${p.exitCode}, ${p.attempts} attempt(s) since ${p.since})`;
  return p.retrying
    ? `join pending: ${why}; ${JOIN_SERVICE} tries again on its own (journalctl -u ${JOIN_SERVICE})`
    : `join pending: ${why}; not retried: fix that, then run node-join join`;
}

export interface JoinFailure {
  env: TimerEnv;
  /** The command the unit runs, before `join` (timer.ts defaultExec). */
  exec: readonly string[];
  /** The join's settings as a config file (renderConfig), for the retries to read. */
  config: string;
  err: unknown;
  now: Date;
}

/**
 * After a failed join of a node not joined before: records why, and for a code a later attempt
 * can fix installs, enables and (on a running systemd) starts the retry unit; for one that needs a
 * person disables it, so that it does not loop. Returns the line join prints.
 */
export function recordJoinFailure(f: JoinFailure): string {
  const l = f.env.layout;
  const code = f.err instanceof NodeJoinError ? f.err.exitCode : ExitCode.other;
  const retrying = RETRYABLE.includes(code);
  const before = readJoinPending(l);
  if (!retrying && !before) return ""; // nothing pending: a plain failed join, as ever
  const at = f.now.toISOString();
  const record: JoinPending = {
    since: before?.since ?? at,
    last: at,
    attempts: (before?.attempts ?? 0) + 1,
    exitCode: code,
    error: errorMessage(f.err).split("\n")[0]!,
    retrying,
  };
  writeFileAtomic(pendingRecord(l), `${JSON.stringify(record, null, 2)}\n`, 0o600);
  if (!retrying) {
    const removed = removeJoinUnit(f.env);
    return `join pending: not retried (exit ${code} needs a person)${removed.length ? `; removed ${removed.join(", ")}` : ""}`;
  }
  // The settings first, then the unit that reads them, then the link that enables it.
  writeIfChanged(pendingConfig(l), f.config, 0o600);
  let wrote = writeIfChanged(unitFile(l), renderJoinService(f.exec, l), 0o644);
  wrote = enableLink(wantsLink(l), LINK_TARGET) || wrote;
  let started = ": it runs at next boot";
  if (f.env.systemdRunning) {
    if (wrote) f.env.run(["systemctl", "daemon-reload"]);
    // --no-block: from inside the unit itself (a retry that failed again) this merges into the
    // running job; from cloud-init's runcmd it starts the retries without waiting for them.
    const r = f.env.run(["systemctl", "start", "--no-block", JOIN_SERVICE]);
    started = r.code === 0 ? ", started" : `, but starting it failed: ${r.output}`;
  }
  return `join pending: ${JOIN_SERVICE} installed, enabled${started}; it tries again every ${RETRY_DELAY} until the node joins (stop: systemctl disable --now ${JOIN_SERVICE})`;
}

/**
 * Removes the link before the unit: a crash between leaves a disabled unit, never a bad link.
 * `reload: false` leaves systemd's loaded copy of the unit alone (see clearJoinPending).
 */
function removeJoinUnit(env: TimerEnv, reload = true): string[] {
  const l = env.layout;
  const removed = [wantsLink(l), unitFile(l), pendingConfig(l)].filter((p) => removeIfExists(p));
  if (removed.length && env.systemdRunning && reload) env.run(["systemctl", "daemon-reload"]);
  return removed;
}

/**
 * This process runs in the retry unit itself: its cgroup is the unit's (cgroups(7),
 * /proc/self/cgroup; systemd puts each service in system.slice/<unit>).
 */
export function inJoinUnit(
  cgroup: () => string = () => readFileSync("/proc/self/cgroup", "utf8"),
): boolean {
  try {
    return cgroup()
      .split("\n")
      .some((line) => line.endsWith(`/${JOIN_SERVICE}`));
  } catch {
    return false;
  }
}

/**
 * After a join that joined: the retry unit, its settings and the record go. Run by the unit
 * itself, systemd is not told (no daemon-reload): a reload while the unit runs loads it anew from
 * disk, where it no longer is, and drops its ExecStartPost= (the kubelet's start) before that
 * runs. The loaded copy goes at the next reload or boot; the files, the link included, are gone.
 */
export function clearJoinPending(env: TimerEnv, fromUnit = inJoinUnit()): string[] {
  const l = env.layout;
  if (inspect(pendingRecord(l)).kind === "missing" && inspect(unitFile(l)).kind === "missing")
    return [];
  const removed = removeJoinUnit(env, !fromUnit);
  if (removeIfExists(pendingRecord(l))) removed.push(pendingRecord(l));
  return removed;
}
