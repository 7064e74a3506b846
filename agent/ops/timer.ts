// The unattended part: a systemd timer that runs `node-join renew` twice a day (randomized, and
// caught up after downtime), or a cron line where there is no systemd.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { childProcess } from "../common/builtins.js";
import { UsageError } from "../common/errors.js";
import {
  ensureDir,
  fsyncDir,
  inspect,
  removeIfExists,
  renameDurable,
  symlinkStaged,
  writeFileAtomic,
} from "../store/fsio.js";
import { hostPath, layout, writeTargets, type Layout } from "../store/layout.js";
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
 * ProtectHome=yes (a secret file may live under /root: read-only keeps it readable).
 */
export function renderService(exec: readonly string[], o: ServiceOptions = {}): string {
  checkExec(exec, "systemd");
  const writable = renewWritablePaths(o.metricsDir).map((d) => systemdWord(`-${d}`));
  return `# Installed by node-join timer install.
[Unit]
Description=Renew node-join certificates before they expire
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=${systemdCommand([...exec, "renew"])}
TimeoutStartSec=${RENEW_TIMEOUT}
UnsetEnvironment=${UNSAFE_ENV.join(" ")}
LimitCORE=0
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${writable.join(" ")}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
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

/**
 * The cron.d line. cron hands the command to /bin/sh, which gets each word single-quoted; the same
 * environment is removed as in the unit (cron passes on /etc/environment through pam_env), and
 * core dumps are off.
 */
export function renderCron(exec: readonly string[], seed: string): string {
  checkExec(exec, "cron");
  const { minute, hours } = cronSchedule(seed);
  const command = [...exec, "renew"].map(shellWord).join(" ");
  return `# Installed by node-join timer install: renew certificates twice a day.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
${minute} ${hours.join(",")} * * * root ulimit -c 0; unset ${UNSAFE_ENV.join(" ")}; exec ${command} >/dev/null 2>&1
`;
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
  enabled: boolean;
  started: boolean;
  message: string;
}

const unitPath = (l: Layout, name: string) => join(l.systemdDir, name);
const wantsLink = (l: Layout) => join(l.systemdDir, "timers.target.wants", TIMER);

/** Writes the units (or the cron line) and enables them; says what to do where it cannot. */
export function installTimer(
  env: TimerEnv,
  exec: readonly string[],
  scheduler: Scheduler,
  seed: string,
  service: ServiceOptions = {},
): TimerInstall {
  const l = env.layout;
  if (scheduler === "cron") {
    const file = join(l.cronDir, CRON_FILE);
    writeFileAtomic(file, renderCron(exec, seed), 0o644);
    return { scheduler, files: [file], enabled: true, started: true, message: `installed ${file}` };
  }
  const unit = renderService(exec, service);
  const servicePath = unitPath(l, SERVICE);
  const timer = unitPath(l, TIMER);
  writeFileAtomic(servicePath, unit, 0o644);
  writeFileAtomic(timer, renderTimer(), 0o644);
  // What `systemctl enable` does for WantedBy=timers.target, done directly so it also works
  // offline (an installer's /target, an image build) where systemctl cannot run.
  const link = wantsLink(l);
  ensureDir(join(l.systemdDir, "timers.target.wants"));
  if (inspect(link).kind !== "symlink" || inspect(link).target !== `/etc/systemd/system/${TIMER}`) {
    const staged = `${link}.node-join-tmp-link`;
    symlinkStaged(staged, `/etc/systemd/system/${TIMER}`);
    renameDurable(staged, link);
    fsyncDir(join(l.systemdDir, "timers.target.wants"));
  }
  if (!env.systemdRunning) {
    return {
      scheduler,
      files: [servicePath, timer, link],
      enabled: true,
      started: false,
      message: `installed and enabled ${TIMER}; systemd is not running on this root: it starts at next boot (or run: systemctl daemon-reload && systemctl start ${TIMER})`,
    };
  }
  const reload = env.run(["systemctl", "daemon-reload"]);
  const start = reload.code === 0 ? env.run(["systemctl", "start", TIMER]) : reload;
  return {
    scheduler,
    files: [servicePath, timer, link],
    enabled: true,
    started: start.code === 0,
    message:
      start.code === 0
        ? `installed, enabled and started ${TIMER}`
        : `installed and enabled ${TIMER}, but starting it failed: ${start.output}`,
  };
}

export function removeTimer(env: TimerEnv): string[] {
  const l = env.layout;
  if (env.systemdRunning) env.run(["systemctl", "stop", TIMER]);
  const removed = [
    wantsLink(l),
    unitPath(l, TIMER),
    unitPath(l, SERVICE),
    join(l.cronDir, CRON_FILE),
  ].filter((p) => removeIfExists(p));
  if (env.systemdRunning) env.run(["systemctl", "daemon-reload"]);
  return removed;
}

export interface TimerStatus {
  scheduler?: Scheduler;
  installed: boolean;
  enabled: boolean;
  active?: boolean;
  nextRun?: string;
  files: string[];
}

export function timerStatus(env: TimerEnv): TimerStatus {
  const l = env.layout;
  const cron = join(l.cronDir, CRON_FILE);
  const units = [unitPath(l, SERVICE), unitPath(l, TIMER)];
  if (units.every((u) => existsSync(u))) {
    const status: TimerStatus = {
      scheduler: "systemd",
      installed: true,
      enabled: inspect(wantsLink(l)).kind === "symlink",
      files: units,
    };
    if (env.systemdRunning) {
      status.active = env.run(["systemctl", "is-active", "--quiet", TIMER]).code === 0;
      const next = env.run([
        "systemctl",
        "show",
        TIMER,
        "--property=NextElapseUSecRealtime",
        "--value",
      ]);
      if (next.code === 0 && next.output) status.nextRun = next.output;
    }
    return status;
  }
  if (existsSync(cron)) return { scheduler: "cron", installed: true, enabled: true, files: [cron] };
  return { installed: false, enabled: false, files: [] };
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
}

export type TimerResult =
  | ({ ok: true; command: "timer install"; message: string } & TimerInstall)
  | { ok: true; command: "timer remove"; removed: string[]; message: string }
  | ({ ok: true; command: "timer status"; message: string } & TimerStatus);

function statusMessage(st: TimerStatus): string {
  if (!st.installed) return "no renewal timer installed: run node-join timer install";
  const parts = [
    `${st.scheduler} timer installed (${st.files.join(", ")})`,
    st.enabled ? "enabled" : "not enabled",
  ];
  if (st.active !== undefined) parts.push(st.active ? "active" : "inactive");
  if (st.nextRun) parts.push(`next run ${st.nextRun}`);
  return parts.join(", ");
}

export function runTimer(action: TimerAction, o: TimerOptions): TimerResult {
  const env = detectTimerEnv(o.layout);
  if (action === "install") {
    const scheduler = chooseScheduler(env, o.scheduler ?? "auto");
    const exec = o.binary !== undefined ? [o.binary] : defaultExec(o.layout);
    checkExec(exec, scheduler, o.binary !== undefined ? "--binary" : "node-join's own path");
    let metricsDir: string | undefined;
    if (o.metricsTextfile !== undefined) {
      metricsDir = hostPath(dirname(o.metricsTextfile), o.layout.root);
      checkUnitPath(metricsDir, "metrics.textfile directory");
    }
    const r = installTimer(
      env,
      exec,
      scheduler,
      o.seed,
      metricsDir === undefined ? {} : { metricsDir },
    );
    return { ok: true, command: "timer install", ...r };
  }
  if (action === "remove") {
    const removed = removeTimer(env);
    const message = removed.length ? `removed ${removed.join(", ")}` : "no timer was installed";
    return { ok: true, command: "timer remove", removed, message };
  }
  const st = timerStatus(env);
  return { ok: true, command: "timer status", ...st, message: statusMessage(st) };
}
