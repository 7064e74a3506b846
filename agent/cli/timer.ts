// `node-join timer install | remove | status`.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { hostPath } from "../config/options.js";
import { selfArgv } from "../ops/hooks.js";
import type { Layout } from "../store/layout.js";
import { chooseScheduler, detectTimerEnv, installTimer, removeTimer, timerStatus, type TimerInstall, type TimerStatus } from "../ops/timer.js";

export type TimerAction = "install" | "remove" | "status";

export interface TimerOptions {
  layout: Layout;
  /** Spreads the cron minute per node. */
  seed: string;
  binary?: string;
  scheduler?: "auto" | "systemd" | "cron";
}

export type TimerResult =
  | ({ ok: true; command: "timer install"; message: string } & TimerInstall)
  | { ok: true; command: "timer remove"; removed: string[]; message: string }
  | ({ ok: true; command: "timer status"; message: string } & TimerStatus);

/** The command line the units run, as the booted host sees it. */
export function defaultExec(l: Layout): string {
  const self = selfArgv();
  if (self.length === 1) return hostPath(self[0]!, l.root);
  if (existsSync(join(l.root, "/usr/bin/node-join"))) return "/usr/bin/node-join";
  return self.map((p) => resolve(p)).join(" ");
}

export function runTimer(action: TimerAction, o: TimerOptions): TimerResult {
  const env = detectTimerEnv(o.layout);
  if (action === "install") {
    const r = installTimer(env, o.binary ?? defaultExec(o.layout), chooseScheduler(env, o.scheduler ?? "auto"), o.seed);
    return { ok: true, command: "timer install", ...r };
  }
  if (action === "remove") {
    const removed = removeTimer(env);
    return { ok: true, command: "timer remove", removed, message: removed.length ? `removed ${removed.join(", ")}` : "no timer was installed" };
  }
  const st = timerStatus(env);
  const message = st.installed
    ? `${st.scheduler} timer installed (${st.files.join(", ")}), ${st.enabled ? "enabled" : "not enabled"}${st.active === undefined ? "" : st.active ? ", active" : ", inactive"}${st.nextRun ? `, next run ${st.nextRun}` : ""}`
    : "no renewal timer installed: run node-join timer install";
  return { ok: true, command: "timer status", ...st, message };
}
