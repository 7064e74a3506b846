// The unattended part: a systemd timer that runs `node-join renew` twice a day (randomized, and
// caught up after downtime), or a cron line where there is no systemd.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { childProcess } from "../common/builtins.js";
import {
  ensureDir,
  fsyncDir,
  inspect,
  removeIfExists,
  renameDurable,
  symlinkStaged,
  writeFileAtomic,
} from "../store/fsio.js";
import { hostPath, type Layout } from "../store/layout.js";
import { selfArgv } from "./hooks.js";

export const SERVICE = "node-join-renew.service";
export const TIMER = "node-join-renew.timer";
export const CRON_FILE = "node-join";

export function renderService(exec: string): string {
  return `# Installed by node-join timer install.
[Unit]
Description=Renew node-join certificates before they expire
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=${exec} renew
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

export function renderCron(exec: string, seed: string): string {
  const { minute, hours } = cronSchedule(seed);
  return `# Installed by node-join timer install: renew certificates twice a day.
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
${minute} ${hours.join(",")} * * * root ${exec} renew >/dev/null 2>&1
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
  exec: string,
  scheduler: Scheduler,
  seed: string,
): TimerInstall {
  const l = env.layout;
  if (scheduler === "cron") {
    const file = join(l.cronDir, CRON_FILE);
    writeFileAtomic(file, renderCron(exec, seed), 0o644);
    return { scheduler, files: [file], enabled: true, started: true, message: `installed ${file}` };
  }
  const service = unitPath(l, SERVICE);
  const timer = unitPath(l, TIMER);
  writeFileAtomic(service, renderService(exec), 0o644);
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
      files: [service, timer, link],
      enabled: true,
      started: false,
      message: `installed and enabled ${TIMER}; systemd is not running on this root: it starts at next boot (or run: systemctl daemon-reload && systemctl start ${TIMER})`,
    };
  }
  const reload = env.run(["systemctl", "daemon-reload"]);
  const start = reload.code === 0 ? env.run(["systemctl", "start", TIMER]) : reload;
  return {
    scheduler,
    files: [service, timer, link],
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

/** The command line the units run, as the booted host sees it. */
export function defaultExec(l: Layout): string {
  const self = selfArgv();
  if (self.length === 1) return hostPath(self[0]!, l.root);
  if (existsSync(join(l.root, "/usr/bin/node-join"))) return "/usr/bin/node-join";
  return self.map((p) => resolve(p)).join(" ");
}

export type TimerAction = "install" | "remove" | "status";

export interface TimerOptions {
  layout: Layout;
  /** Spreads the cron minute per node. */
  seed: string;
  binary?: string;
  scheduler?: "auto" | Scheduler;
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
    const r = installTimer(
      env,
      o.binary ?? defaultExec(o.layout),
      chooseScheduler(env, o.scheduler ?? "auto"),
      o.seed,
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
