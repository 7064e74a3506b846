// The unattended part: a systemd timer that runs `node-join renew` twice a day (randomized, and
// caught up after downtime), or a cron line where there is no systemd.
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, lstatSync, statSync, type Stats } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { childProcess } from "../common/builtins.js";
import { UsageError } from "../common/errors.js";
import {
  fsyncDir,
  readNoFollow,
  removeIfExists,
  renameDurable,
  symlinkStaged,
  writeFileAtomic,
} from "../store/fsio.js";
import { hostPath, layout, writeTargets, type Layout } from "../store/layout.js";
import { isUnchanged } from "../store/transaction.js";
import { selfArgv } from "./hooks.js";

export const SERVICE = "node-join-renew.service";
export const TIMER = "node-join-renew.timer";
export const CRON_FILE = "node-join";

/**
 * How long one renewal may take before systemd stops it. A oneshot service has no start timeout by
 * default (systemd.service(5), TimeoutStartSec=), so a run that hangs would keep the unit
 * "activating" and the timer would never start it again. 30 minutes hold the CA timeout (5 minutes
 * by default, per CA) and the hooks (the static pod restart waits 25 s); a run stopped mid-install
 * is finished or undone by the next one.
 */
export const RENEW_TIMEOUT = "30min";

/**
 * Host-wide settings the runtime reads before any of node-join's code runs, and that make it load
 * code or crypto configuration as root: the dynamic loader's (ld.so(8)), OpenSSL's (OPENSSL_CONF
 * loads providers and engines: config(5)), Node's (NODE_OPTIONS when the units run node and the
 * bundle; the single binary ignores it). The units remove them; a user running the binary by hand
 * keeps their own environment.
 */
export const UNSAFE_ENV = [
  "LD_PRELOAD",
  "LD_LIBRARY_PATH",
  "LD_AUDIT",
  "OPENSSL_CONF",
  "OPENSSL_CONF_INCLUDE",
  "OPENSSL_MODULES",
  "OPENSSL_ENGINES",
  "NODE_OPTIONS",
  "NODE_PATH",
  "NODE_EXTRA_CA_CERTS",
  "NODE_ICU_DATA",
  "NODE_COMPILE_CACHE",
] as const;

/** Where the metrics textfile goes unless the config says otherwise (settings' default). */
export const DEFAULT_METRICS_DIR = "/var/lib/node_exporter/textfile_collector";

// C0 controls, DEL and C1 controls: a newline would end the ExecStart= line (and start another
// directive) or the cron line; none belongs in a path.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Refuses a path a unit or cron line cannot carry: relative, or holding a control character. */
export function checkUnitPath(path: string, what: string): void {
  if (!path.startsWith("/"))
    throw new UsageError(`${what} ${JSON.stringify(path)}: must be an absolute path`);
  if (CONTROL.test(path))
    throw new UsageError(`${what} ${JSON.stringify(path)}: holds a control character`);
}

/**
 * Refuses a command the scheduler cannot run as given. systemd refuses an executable path holding
 * a quote or a backslash ("Executable name contains special characters", load-fragment.c) and
 * takes it literally otherwise; cron turns % into a newline in Vixie cron (crontab(5)) and not in
 * others, so no escape of it works everywhere.
 */
export function checkExec(exec: readonly string[], scheduler: Scheduler, what = "binary"): void {
  for (const w of exec) checkUnitPath(w, what);
  if (scheduler === "systemd" && /["'\\]/.test(exec[0]!))
    throw new UsageError(
      `${what} ${JSON.stringify(exec[0])}: systemd does not run an executable whose path holds a quote or a backslash: install node-join under a plainer path`,
    );
  if (scheduler === "cron") {
    const bad = exec.find((w) => w.includes("%"));
    if (bad !== undefined)
      throw new UsageError(
        `${what} ${JSON.stringify(bad)}: a cron line cannot hold % (cron turns it into a newline): install node-join under a path without %`,
      );
  }
}

const PLAIN = /^[A-Za-z0-9_@+=:,./-]+$/;

/**
 * One word of a systemd path list (ReadWritePaths=), as systemd reads it back: double-quoted,
 * backslash escapes inside (systemd.syntax(7) "Quoting"), % written %% (systemd.unit(5)
 * "SPECIFIERS").
 */
export function systemdWord(word: string): string {
  const quoted = PLAIN.test(word) ? word : `"${word.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  return quoted.replace(/%/g, "%%");
}

/**
 * A command line (ExecStart=): the executable's path is taken literally, the arguments also have
 * $ expanded, so theirs is written $$ (systemd.service(5) "COMMAND LINES").
 */
export function systemdCommand(argv: readonly string[]): string {
  return argv
    .map((w, i) => (i === 0 ? systemdWord(w) : systemdWord(w).replace(/\$/g, "$$$$")))
    .join(" ");
}

/** One word of a POSIX shell command line, single-quoted unless it needs no quoting. */
export function shellWord(word: string): string {
  return PLAIN.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The directories below `dirs` that no other one of them holds. */
function outermost(dirs: string[]): string[] {
  const unique = [...new Set(dirs)];
  return unique.filter((d) => !unique.some((o) => o !== d && d.startsWith(`${o}/`)));
}

/**
 * Every directory a renewal writes in, as the booted host names them: what the install transaction
 * and its recovery write (the managed directories, backups, the static pod manifests and where the
 * restart parks them: layout.ts writeTargets, without the timer's and cron's, which only join and
 * `timer install` write) and the metrics textfile's directory.
 */
export function renewWritablePaths(metricsDir = DEFAULT_METRICS_DIR): string[] {
  const l = layout("/");
  const dirs = writeTargets(l).filter((d) => d !== l.systemdDir && d !== l.cronDir);
  return [...outermost(dirs), metricsDir];
}

/**
 * Variables for the renewal service (proxy settings: https_proxy, no_proxy...), one NAME=value a
 * line (systemd.exec(5) EnvironmentFile=). Optional: systemd skips it when it is missing ("-").
 * UnsetEnvironment= is applied after it, so it cannot bring back what that removes. Its NODE_JOIN_*
 * variables steer renew as the config does: renew, join and trust refuse it, and status flags it,
 * when another user owns it or may write it (store/strict-modes.ts checkEnvironmentFile).
 */
export const RENEW_ENVIRONMENT_FILE = layout("/").environmentFile;

export interface ServiceOptions {
  /** The metrics textfile's directory on the booted host (default DEFAULT_METRICS_DIR). */
  metricsDir?: string;
}

/**
 * The renewal service. It runs as root and writes keys, so it is confined to what a renewal needs
 * (systemd.exec(5)): the file system read-only but for the directories it writes
 * (ProtectSystem=strict, ReadWritePaths=, each optional with "-" so a missing one does not stop the
 * unit), no new privileges, no core dumps (they would hold private keys), a private /tmp and
 * devices, no kernel, clock, hostname or namespace changes. The default hooks keep working:
 * `systemctl try-restart kubelet` asks PID 1 over its socket in /run (connecting needs no write
 * access), and the static pod restart renames manifests within /etc/kubernetes. Not used:
 * MemoryDenyWriteExecute (V8 compiles code at run time), SystemCallFilter (a hook is any program,
 * and a filtered system call kills it), PrivateNetwork and IPAddressDeny (the CAs are anywhere),
 * ProtectHome=yes (a secret file may live under /root: read-only keeps it readable). The one
 * device let through the private /dev is the TPM's resource manager, where the node's identity may
 * live (agent/tpm; "-": a host without a TPM starts the unit all the same). systemd
 * passes no login shell's environment: an operator's proxy variables go in RENEW_ENVIRONMENT_FILE.
 *
 * Ordered after time-sync.target as well as the network: a board without a real-time clock boots
 * with the clock at 1970 or at its last shutdown, and a renewal then would judge certificates by a
 * wrong time. The target is passive (systemd.special(7)): it is not pulled in here, and it is only
 * a real wait for the synchronisation where systemd-time-wait-sync.service is enabled
 * (systemd-time-wait-sync.service(8)); renew refuses to judge with a clock that is not set either
 * way. The timer gets the same ordering from systemd (systemd.timer(5), "Implicit Dependencies":
 * After=time-set.target time-sync.target for OnCalendar= timers), so its catch-up run
 * (Persistent=true) comes after the synchronisation where that service waits for it.
 */
export function renderService(exec: readonly string[], o: ServiceOptions = {}): string {
  checkExec(exec, "systemd");
  const writable = renewWritablePaths(o.metricsDir).map((d) => systemdWord(`-${d}`));
  return `# Installed by node-join timer install.
[Unit]
Description=Renew node-join certificates before they expire
After=network-online.target time-sync.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=${systemdCommand([...exec, "renew"])}
TimeoutStartSec=${RENEW_TIMEOUT}
EnvironmentFile=-${RENEW_ENVIRONMENT_FILE}
UnsetEnvironment=${UNSAFE_ENV.join(" ")}
LimitCORE=0
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${writable.join(" ")}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
BindPaths=-/dev/tpmrm0
DeviceAllow=/dev/tpmrm0 rw
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
`;
}

export function renderTimer(): string {
  return `# Installed by node-join timer install.
[Unit]
Description=Renew node-join certificates twice a day

[Timer]
OnCalendar=*-*-* 00,12:00:00
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
`;
}

/** A minute and two hours that differ from node to node but are the same on every install. */
export function cronSchedule(seed: string): { minute: number; hours: [number, number] } {
  const d = createHash("sha256").update(seed).digest();
  const hour = d[1]! % 12;
  return { minute: d[0]! % 60, hours: [hour, hour + 12] };
}

/** The tag renew's output carries in syslog when cron runs it (logger(1) -t). */
export const SYSLOG_TAG = "node-join";

/**
 * The cron.d line. cron hands the command to /bin/sh, which gets each word single-quoted; the same
 * environment is removed as in the unit (cron passes on /etc/environment through pam_env), and
 * core dumps are off. renew's output, failures included, goes to syslog through logger(1)
 * (util-linux, or bsdutils, essential on Debian), the cron counterpart of the unit's journal; the
 * pipeline's exit status is logger's, which cron ignores anyway. Where logger is missing the
 * command runs bare and cron handles the output as any job's: it mails it to root (crontab(5)
 * MAILTO), or without a mailer logs that it discarded it.
 */
export function renderCron(exec: readonly string[], seed: string): string {
  checkExec(exec, "cron");
  const { minute, hours } = cronSchedule(seed);
  const command = [...exec, "renew"].map(shellWord).join(" ");
  const run = `if command -v logger >/dev/null 2>&1; then ${command} 2>&1 | logger -t ${SYSLOG_TAG}; else exec ${command}; fi`;
  return `# Installed by node-join timer install: renew certificates twice a day.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
${minute} ${hours.join(",")} * * * root ulimit -c 0; unset ${UNSAFE_ENV.join(" ")}; ${run}
`;
}

/** The minute and hours of an installed cron line (renderCron's), if it has one. */
export function parseCronSchedule(text: string): { minute: number; hours: number[] } | undefined {
  const m = /^(\d+) (\d+),(\d+) \* \* \* root /m.exec(text);
  return m ? { minute: Number(m[1]), hours: [Number(m[2]), Number(m[3])] } : undefined;
}

/** When cron next runs a line at `minute` past `hours` (ascending), in the local time zone. */
export function nextCronRun(minute: number, hours: readonly number[], now: Date): Date {
  const at = (day: number, hour: number) =>
    new Date(now.getFullYear(), now.getMonth(), now.getDate() + day, hour, minute);
  const candidates = [0, 1].flatMap((day) => hours.map((h) => at(day, h)));
  return candidates.find((d) => d > now) ?? at(2, hours[0]!);
}

export type Scheduler = "systemd" | "cron";

export interface TimerEnv {
  layout: Layout;
  /** systemd is PID 1 on this root (only possible for /). */
  systemdRunning: boolean;
  /** systemd is installed on this root. */
  systemdInstalled: boolean;
  run: (argv: string[]) => { code: number; output: string };
}

export function detectTimerEnv(l: Layout): TimerEnv {
  const r = (p: string) => join(l.root, p);
  return {
    layout: l,
    systemdRunning: l.root === "/" && existsSync("/run/systemd/system"),
    systemdInstalled:
      existsSync(r("/lib/systemd/systemd")) || existsSync(r("/usr/lib/systemd/systemd")),
    run: (argv) => {
      const p = childProcess().spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
      return {
        code: p.error ? 127 : (p.status ?? 1),
        output: `${p.stdout ?? ""}${p.stderr ?? ""}`.trim(),
      };
    },
  };
}

export function chooseScheduler(env: TimerEnv, wanted: "auto" | Scheduler): Scheduler {
  if (wanted !== "auto") return wanted;
  return env.systemdRunning || env.systemdInstalled ? "systemd" : "cron";
}

export interface TimerInstall {
  scheduler: Scheduler;
  files: string[];
  /** The other scheduler's files, removed so that renew does not run twice. */
  removed: string[];
  /** Something was written, removed or started; false when all was already in place. */
  changed: boolean;
  enabled: boolean;
  started: boolean;
  message: string;
}

const unitPath = (l: Layout, name: string) => join(l.systemdDir, name);
const wantsLink = (l: Layout) => join(l.systemdDir, "timers.target.wants", TIMER);
const cronPath = (l: Layout) => join(l.cronDir, CRON_FILE);
/** What the wants link points to: the unit as the booted host names it. */
const LINK_TARGET = `/etc/systemd/system/${TIMER}`;

/**
 * What each scheduler installs, in the order remove takes them: the enable link before the units
 * (a crash between leaves a disabled unit, never a link to nothing), or the cron line.
 */
function schedulerFiles(l: Layout, s: Scheduler): string[] {
  return s === "systemd" ? [wantsLink(l), unitPath(l, TIMER), unitPath(l, SERVICE)] : [cronPath(l)];
}

/** Every file either scheduler installs: `leave` removes them (and recovery may finish that). */
export function timerFiles(l: Layout): string[] {
  return [...schedulerFiles(l, "systemd"), ...schedulerFiles(l, "cron")];
}

/** The file's lstat, or undefined where there is none (or it cannot be seen); never reads it. */
function lstatOf(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
const present = (path: string) => lstatOf(path) !== undefined;

/** Writes a unit or the cron line unless it already holds exactly this; says whether it wrote. */
export function writeIfChanged(path: string, content: string, mode = 0o644): boolean {
  if (isUnchanged({ path, content, mode })) return false;
  writeFileAtomic(path, content, mode);
  return true;
}

/**
 * What `systemctl enable` does for a WantedBy= (a link in the target's .wants directory to the
 * unit), done directly so it also works offline (an installer's /target, an image build) where
 * systemctl cannot run. Says whether it wrote.
 */
export function enableLink(link: string, target: string): boolean {
  if (isUnchanged({ path: link, symlink: target })) return false;
  const staged = `${link}.node-join-tmp-link`;
  symlinkStaged(staged, target);
  renameDurable(staged, link);
  fsyncDir(dirname(link));
  return true;
}

/**
 * Removes one scheduler's files; on a running systemd its timer is stopped first and the units
 * reloaded after, as `systemctl disable --now` would.
 */
function removeScheduler(env: TimerEnv, s: Scheduler): string[] {
  const there = schedulerFiles(env.layout, s).filter(present);
  if (there.length === 0) return [];
  const live = s === "systemd" && env.systemdRunning;
  if (live) env.run(["systemctl", "stop", TIMER]);
  const removed = there.filter((p) => removeIfExists(p));
  if (live) env.run(["systemctl", "daemon-reload"]);
  return removed;
}

/** "; removed a, b" after what an install wrote, when it replaced the other scheduler. */
const replacing = (removed: string[]) => (removed.length ? `; removed ${removed.join(", ")}` : "");

/**
 * Writes the units (or the cron line) and enables them, then removes the other scheduler's files:
 * the new one in place first, so a crash between leaves both (status reports it, the next install
 * ends it), never none. Says what to do where it cannot start the timer.
 */
export function installTimer(
  env: TimerEnv,
  exec: readonly string[],
  scheduler: Scheduler,
  seed: string,
  service: ServiceOptions = {},
): TimerInstall {
  const l = env.layout;
  if (scheduler === "cron") {
    const file = cronPath(l);
    const wrote = writeIfChanged(file, renderCron(exec, seed));
    const removed = removeScheduler(env, "systemd");
    const changed = wrote || removed.length > 0;
    return {
      scheduler,
      files: [file],
      removed,
      changed,
      enabled: true,
      started: true,
      message: changed
        ? `installed ${file}${replacing(removed)}`
        : `unchanged: ${file} is installed`,
    };
  }
  const servicePath = unitPath(l, SERVICE);
  const timer = unitPath(l, TIMER);
  // Both rendered first: a path the unit cannot carry is refused before anything is written.
  const [serviceText, timerText] = [renderService(exec, service), renderTimer()];
  let wrote = writeIfChanged(servicePath, serviceText);
  wrote = writeIfChanged(timer, timerText) || wrote;
  const link = wantsLink(l);
  wrote = enableLink(link, LINK_TARGET) || wrote;
  const removed = removeScheduler(env, "cron");
  const files = [servicePath, timer, link];
  const base = { scheduler, files, removed, enabled: true };
  if (!env.systemdRunning) {
    const changed = wrote || removed.length > 0;
    const boot = notRunningHint(l.root);
    return {
      ...base,
      changed,
      started: false,
      message: changed
        ? `installed and enabled ${TIMER}${replacing(removed)}; ${boot}`
        : `unchanged: ${TIMER} is installed and enabled; ${boot}`,
    };
  }
  if (!wrote && env.run(["systemctl", "is-active", "--quiet", TIMER]).code === 0)
    return {
      ...base,
      changed: removed.length > 0,
      started: true,
      message: removed.length
        ? `${TIMER} is installed, enabled and active${replacing(removed)}`
        : `unchanged: ${TIMER} is installed, enabled and active`,
    };
  const reload = wrote ? env.run(["systemctl", "daemon-reload"]) : { code: 0, output: "" };
  const start = reload.code === 0 ? env.run(["systemctl", "start", TIMER]) : reload;
  return {
    ...base,
    changed: true,
    started: start.code === 0,
    message:
      start.code === 0
        ? `installed, enabled and started ${TIMER}${replacing(removed)}`
        : `installed and enabled ${TIMER}${replacing(removed)}, but starting it failed: ${start.output}`,
  };
}

/** Removes both schedulers' files (whichever are there). */
export function removeTimer(env: TimerEnv): string[] {
  return [...removeScheduler(env, "systemd"), ...removeScheduler(env, "cron")];
}

/** What is installed: the systemd timer, the cron line, both (renew runs twice), or none. */
export type InstalledScheduler = Scheduler | "both" | "none";

export interface TimerStatus {
  scheduler: InstalledScheduler;
  installed: boolean;
  /** systemd: the timers.target.wants link is there; cron: the line is there. */
  enabled: boolean;
  /** On a running systemd: the timer is active. */
  active?: boolean;
  /** When renew runs next, ISO 8601 UTC, where that can be known. */
  nextRun?: string;
  /** Why nextRun is not given, where it is not. */
  nextRunNote?: string;
  files: string[];
  /**
   * What needs the operator's attention: both installed, part of the units, a disabled or inactive
   * timer, or none where one is wanted.
   */
  problem?: string;
}

const iso = (d: Date) => `${d.toISOString().slice(0, 19)}Z`;

/**
 * The timer's next elapse from systemd, which includes the randomized delay it drew.
 * `--timestamp=utc` (systemd 247) prints "Tue 2026-12-01 12:23:45 UTC" whatever the locale.
 */
function systemdNextRun(env: TimerEnv): { nextRun: string } | { nextRunNote: string } {
  const r = env.run([
    "systemctl",
    "show",
    TIMER,
    "--property=NextElapseUSecRealtime",
    "--value",
    "--timestamp=utc",
  ]);
  const m = /(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC/.exec(r.output);
  if (r.code === 0 && m) return { nextRun: `${m[1]}T${m[2]}Z` };
  if (r.code === 0 && r.output === "") return { nextRunNote: "none scheduled" };
  return { nextRunNote: "unknown (systemctl show did not say)" };
}

/**
 * The cron line's next run: computed on / in this process's time zone, which is the host's as
 * cron's is unless TZ says otherwise; under another root only the schedule is known.
 */
function cronNextRun(env: TimerEnv, now: Date): { nextRun: string } | { nextRunNote: string } {
  let text: string;
  try {
    text = readNoFollow(cronPath(env.layout)).toString("utf8");
  } catch {
    return { nextRunNote: "unknown (the cron line is not readable)" };
  }
  const s = parseCronSchedule(text);
  if (!s) return { nextRunNote: "unknown (not node-join's cron line)" };
  if (env.layout.root === "/") return { nextRun: iso(nextCronRun(s.minute, s.hours, now)) };
  const mm = String(s.minute).padStart(2, "0");
  return {
    nextRunNote: `at ${s.hours.map((h) => `${String(h).padStart(2, "0")}:${mm}`).join(" or ")} local time`,
  };
}

/**
 * Where systemd finds a unit (systemd.unit(5) "UNIT FILE LOAD PATH"): node-join's own in /etc, the
 * .deb's in /lib, shipped disabled. The .deb's alone (not enabled) are not an installed timer.
 */
const unitDirs = (l: Layout) => [
  l.systemdDir,
  join(l.root, "usr/lib/systemd/system"),
  join(l.root, "lib/systemd/system"),
];

/**
 * What is installed and when it runs next; read-only. `wanted`: a missing timer is a problem (a
 * joined node whose config does not say timer.enabled: false).
 */
export function timerStatus(env: TimerEnv, now: Date, wanted = true): TimerStatus {
  const l = env.layout;
  const systemdFiles = schedulerFiles(l, "systemd").filter(present);
  const cronFiles = schedulerFiles(l, "cron").filter(present);
  const scheduler: InstalledScheduler =
    systemdFiles.length && cronFiles.length
      ? "both"
      : systemdFiles.length
        ? "systemd"
        : cronFiles.length
          ? "cron"
          : "none";
  if (scheduler === "none")
    return {
      scheduler,
      installed: false,
      enabled: false,
      files: [],
      ...(wanted ? { problem: "renew runs only by hand: run node-join timer install" } : {}),
    };
  // `systemctl enable` on the .deb's units links to /lib/systemd/system: enabled all the same.
  const linked = lstatOf(wantsLink(l))?.isSymbolicLink() === true;
  const st: TimerStatus = {
    scheduler,
    installed: true,
    enabled: linked || cronFiles.length > 0,
    files: [...systemdFiles, ...cronFiles],
  };
  const problems: string[] = [];
  if (scheduler === "both")
    problems.push(
      "renew runs twice: run node-join timer install --scheduler systemd or --scheduler cron to keep one",
    );
  if (systemdFiles.length) {
    const missing = [TIMER, SERVICE].filter((u) => !unitDirs(l).some((d) => present(join(d, u))));
    if (missing.length)
      problems.push(`${missing.join(" and ")} missing: run node-join timer install`);
    else if (!linked) problems.push(`${TIMER} not enabled: run node-join timer install`);
    if (env.systemdRunning) {
      st.active = env.run(["systemctl", "is-active", "--quiet", TIMER]).code === 0;
      if (!st.active) problems.push(`${TIMER} not active: run systemctl start ${TIMER}`);
    }
  }
  Object.assign(
    st,
    systemdFiles.length
      ? env.systemdRunning
        ? systemdNextRun(env)
        : {
            nextRunNote: "after boot (systemd is not running on this root)",
          }
      : cronNextRun(env, now),
  );
  if (problems.length) st.problem = problems.join("; ");
  return st;
}

/** The timer in one line: what is installed, enabled, next run, and the problem if any. */
/** `withProblem: false`: for `status`, which lists problems in its own "needs attention" block. */
export function timerSummary(st: TimerStatus, withProblem = true): string {
  const what = {
    systemd: "systemd timer",
    cron: "cron line",
    both: "both! systemd timer and cron line",
    none: "none",
  }[st.scheduler];
  const parts = [what];
  if (st.installed) {
    parts.push(st.enabled ? "enabled" : "not enabled");
    if (st.active !== undefined) parts.push(st.active ? "active" : "inactive");
    parts.push(`next run ${st.nextRun ?? st.nextRunNote ?? "unknown"}`);
  }
  return `${parts.join(", ")}${withProblem && st.problem ? `; ${st.problem}` : ""}`;
}

/** The command the units run, as the booted host sees it (before the subcommand). */
export function defaultExec(l: Layout): string[] {
  const self = selfArgv();
  if (self.length === 1) return [hostPath(self[0]!, l.root)];
  if (existsSync(join(l.root, "/usr/bin/node-join"))) return ["/usr/bin/node-join"];
  return self.map((p) => resolve(p));
}

export type TimerAction = "install" | "remove" | "status";

export interface TimerOptions {
  layout: Layout;
  /** Spreads the cron minute per node. */
  seed: string;
  binary?: string;
  scheduler?: "auto" | Scheduler;
  /**
   * The metrics textfile (settings' metrics.textfile, under the root or not): the unit may write
   * in its directory.
   */
  metricsTextfile?: string;
  /** A missing timer is a problem (status): the config does not say timer.enabled: false. */
  wanted?: boolean;
  /** Warnings (stderr). */
  log?: (line: string) => void;
  now?: Date;
}

export type TimerInstallResult = {
  ok: true;
  command: "timer install";
  message: string;
} & TimerInstall;
export type TimerResult =
  | TimerInstallResult
  | { ok: true; command: "timer remove"; removed: string[]; changed: boolean; message: string }
  | ({ ok: true; command: "timer status"; message: string } & TimerStatus);

/**
 * The root the timer goes under must exist: a mistyped --root would otherwise get a fresh
 * etc/systemd tree that no system boots from.
 */
function checkRoot(root: string): void {
  let dir: boolean;
  try {
    dir = statSync(root).isDirectory();
  } catch {
    throw new UsageError(`--root ${root}: no such directory`);
  }
  if (!dir) throw new UsageError(`--root ${root}: not a directory`);
}

/**
 * --binary as the units name it: absolute, and under --root written as the booted host sees it,
 * as a path in the config is (config/sources.ts renderConfig).
 */
function binaryOnHost(binary: string, l: Layout): string {
  checkUnitPath(binary, "--binary");
  return hostPath(resolve(binary), l.root);
}

/**
 * A --binary missing under the root is a warning, not an error: an image build may install the
 * timer before the binary.
 */
function warnIfNotRunnable(onHost: string, l: Layout, log: (line: string) => void): void {
  const file = join(l.root, onHost);
  try {
    accessSync(file, constants.X_OK);
    if (statSync(file).isFile()) return;
  } catch {
    // missing or not executable: said below
  }
  log(
    `warning: --binary ${onHost}: no executable file at ${file}; the renewal timer fails until node-join is installed there`,
  );
}

export function timerInstall(o: TimerOptions): TimerInstallResult {
  checkRoot(o.layout.root);
  const env = detectTimerEnv(o.layout);
  const scheduler = chooseScheduler(env, o.scheduler ?? "auto");
  const given = o.binary !== undefined;
  const exec = given ? [binaryOnHost(o.binary!, o.layout)] : defaultExec(o.layout);
  checkExec(exec, scheduler, given ? "--binary" : "node-join's own path");
  let metricsDir: string | undefined;
  if (o.metricsTextfile !== undefined) {
    metricsDir = hostPath(dirname(o.metricsTextfile), o.layout.root);
    checkUnitPath(metricsDir, "metrics.textfile directory");
  }
  // Everything checked: a warning never comes before an error.
  if (given) warnIfNotRunnable(exec[0]!, o.layout, o.log ?? (() => {}));
  const r = installTimer(
    env,
    exec,
    scheduler,
    o.seed,
    metricsDir === undefined ? {} : { metricsDir },
  );
  return { ok: true, command: "timer install", ...r };
}

export function runTimer(action: TimerAction, o: TimerOptions): TimerResult {
  if (action === "install") return timerInstall(o);
  checkRoot(o.layout.root);
  const env = detectTimerEnv(o.layout);
  if (action === "remove") {
    const removed = removeTimer(env);
    const message = removed.length
      ? `removed ${removed.join(", ")}`
      : "unchanged: no renewal timer was installed";
    return { ok: true, command: "timer remove", removed, changed: removed.length > 0, message };
  }
  const st = timerStatus(env, o.now ?? new Date(), o.wanted ?? true);
  return {
    ok: true,
    command: "timer status",
    ...st,
    message: `renewal timer: ${timerSummary(st)}`,
  };
}

/**
 * What to run when systemd does not run the root the timer went into. On / (a container, a chroot
 * without systemd) the host's systemctl; under --root the host's systemd is not the target's: the
 * enable link is in place and the target starts the timer when it boots, and `systemctl --root`
 * (systemctl(1): on the unit files below that directory) checks it from here.
 */
export function notRunningHint(root: string): string {
  if (root === "/")
    return `systemd is not running on this root: it starts at next boot (or run: systemctl daemon-reload && systemctl start ${TIMER})`;
  return `systemd is not running on this root: the timer is enabled in ${root} and starts when that system boots (nothing to run on this host; systemctl --root ${root} is-enabled ${TIMER} checks it)`;
}
