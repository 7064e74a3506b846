#!/usr/bin/env node
// The CLI: commander definitions generated from the options table, and the one place where
// errors become exit codes and messages.
import { Command, CommanderError, Option } from "commander";
import { OPTIONS } from "../config/options.js";
import { errorMessage, ExitCode, NodeJoinError } from "../common/errors.js";
import { systemClock } from "../ca/retry.js";
import { loadSettings, type GlobalOptions } from "../config/load.js";
import { formatDiscover, runDiscover } from "./discover.js";
import { runJoin } from "./join.js";
import { runRenew } from "./renew.js";
import { runTimer, type TimerAction } from "./timer.js";
import { refreshMetrics } from "../ops/metrics-file.js";
import { podsForKinds, restartStaticPods } from "../ops/static-pods.js";
import { parseDuration } from "../config/options.js";
import { UsageError } from "../common/errors.js";
import type { Settings } from "../config/settings.js";
import type { Layout } from "../store/layout.js";
import { collectStatus, formatStatus } from "./status.js";
import { versionLine, agentVersion } from "../common/version.js";
import type { Runtime } from "../engine/engine.js";
import { layout as loadLayout } from "../store/layout.js";
import { isSea } from "../common/builtins.js";

export const EXIT_CODES_HELP = `
Exit codes:
  0  done, or nothing to do
  1  any other failure
  2  usage or config error (the message names the flag, key or file)
  3  CA unreachable within --timeout
  4  CA refused the request (its message is shown) or gave an unusable answer
  5  verification or pin failure (nothing was written)
  6  local I/O error
  7  another node-join holds the lock (/var/lib/node-join/lock)
`;

interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function addGlobal(cmd: Command, withConfig = true): Command {
  cmd.option("--root <dir>", "operate on this root directory instead of / (paths and config under it)");
  if (withConfig) cmd.option("--config <file>", "config file (default <root>/etc/node-join/config.yaml)");
  cmd.option("--json", "print a machine-readable result on stdout");
  return cmd;
}

/** Runs a command and refreshes the metrics textfile with its outcome, success or failure. */
async function withMetrics<T>(command: string, s: Settings, l: Layout, io: Io, fn: () => Promise<T>, renewed?: (r: T) => number, nodeName?: (r: T) => string): Promise<T> {
  const log = (line: string) => io.stderr(`node-join: ${line}\n`);
  try {
    const r = await fn();
    refreshMetrics(s, l, nodeName?.(r), { command, success: true, time: new Date(), ...(renewed ? { renewed: renewed(r) } : {}) }, log);
    return r;
  } catch (err) {
    refreshMetrics(s, l, undefined, { command, success: false, time: new Date() }, log);
    throw err;
  }
}

function runtime(root: string, io: Io): Runtime {
  return { layout: loadLayout(root), env: io.env, clock: systemClock, log: (line) => io.stderr(`node-join: ${line}\n`) };
}

/**
 * `withJoinFlags: false` leaves out join's flags (one per option in the settings table): building them
 * is a measurable part of a `renew` with nothing due, which runs twice a day on every node.
 */
export function buildProgram(io: Io, setResult: (r: { json: boolean; value: unknown; text: string }) => void, withJoinFlags = true): Command {
  const program = new Command("node-join")
    .description("Join a Kubernetes node: local keys, a remote CA (CFSSL), verified certificates and kubeconfigs")
    .addHelpText("after", EXIT_CODES_HELP)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  const join = addGlobal(program.command("join").description("issue and install this node's certificates and kubeconfigs"));
  for (const spec of withJoinFlags ? OPTIONS : []) {
    if (!spec.flag || (spec.command ?? "join") !== "join") continue;
    const flag = spec.type === "bool" ? `--${spec.flag}` : `--${spec.flag} <${spec.valueName ?? "value"}>`;
    const opt = new Option(flag, spec.description);
    if (spec.type === "list") opt.argParser(collect);
    if (spec.choices) opt.choices(spec.choices as string[]);
    join.addOption(opt);
  }
  join
    .option("--force", "re-issue every certificate even if the installed ones are valid")
    .option("--dry-run", "print what would be requested and written; change nothing")
    .option("--no-timer", "do not install the renewal timer (config timer.enabled: false)")
    .addHelpText("after", EXIT_CODES_HELP)
    .action(async (opts: GlobalOptions & Record<string, unknown>) => {
      // commander sets timer=true by default for --no-timer; only an explicit --no-timer counts.
      const { timer, ...rest } = opts;
      const loaded = loadSettings(rest, io.env);
      if (timer === false) {
        loaded.settings.timer.enabled = false;
        loaded.values.set("timer.enabled", false);
      }
      const rt = runtime(loaded.layout.root, io);
      const r = await withMetrics("join", loaded.settings, loaded.layout, io, () =>
        runJoin({ settings: loaded.settings, values: loaded.values, force: Boolean(opts.force), dryRun: Boolean(opts.dryRun) }, rt),
        undefined, (j) => j.nodeName);
      const timerResult = !r.dryRun && loaded.settings.timer.enabled ? runTimer("install", { layout: loaded.layout, seed: r.nodeName }) : undefined;
      if (timerResult) (r as { timer?: unknown }).timer = timerResult;
      const text =
        r.message +
        "\n" +
        r.issued.map((i) => `  ${r.dryRun ? "would request" : "issued"} ${i.kind}: CN=${i.commonName}${i.organizations.length ? ` O=${i.organizations.join(",")}` : ""}${[...i.dnsNames, ...i.ips].length ? ` SANs=${[...i.dnsNames, ...i.ips].join(",")}` : ""} (${i.reason === "missing" ? "new" : i.reason})\n`).join("");
      setResult({ json: Boolean(opts.json), value: r, text: text + (timerResult ? `${timerResult.message}\n` : "") });
    });

  addGlobal(program.command("renew").description("renew every certificate that is due, broken or no longer matches the node"))
    .option("--before <duration>", "renew when less than this remains (default: the kubelet's rule, 70-90% of the lifetime)")
    .option("--force", "renew every certificate now")
    .option("--dry-run", "print what would be renewed; change nothing")
    .addHelpText("after", EXIT_CODES_HELP)
    .action(async (opts: GlobalOptions & Record<string, unknown>) => {
      const loaded = loadSettings(opts, io.env);
      const r = await withMetrics("renew", loaded.settings, loaded.layout, io, () =>
        runRenew({ settings: loaded.settings, force: Boolean(opts.force), dryRun: Boolean(opts.dryRun), configured: loaded.configFile !== undefined }, runtime(loaded.layout.root, io)),
        (x) => x.renewed.length, (x) => x.nodeName);
      const text = `${r.message}\n${r.renewed.map((x) => `  ${r.dryRun ? "would renew" : "renewed"} ${x.kind}: ${x.reason}${x.serial ? ` -> serial ${x.serial}, expires ${x.notAfter}` : ""}\n`).join("")}`;
      setResult({ json: Boolean(opts.json), value: r, text });
    });

  const timerCmd = program.command("timer").description("install, remove or show the systemd timer (or cron line) that runs renew");
  for (const action of ["install", "remove", "status"] as const) {
    const sub = timerCmd.command(action).description(`${action} the renewal timer`);
    sub.option("--root <dir>", "operate on this root directory instead of /").option("--json", "machine-readable output");
    if (action === "install") {
      sub.option("--binary <path>", "the node-join the units run (default: this binary's installed path)");
      sub.addOption(new Option("--scheduler <kind>", "systemd or cron (default: systemd when installed on the root)").choices(["auto", "systemd", "cron"]).default("auto"));
    }
    sub.action((opts: { root?: string; json?: boolean; binary?: string; scheduler?: "auto" | "systemd" | "cron" }) => {
      const loaded = loadSettings({ ...(opts.root ? { root: opts.root } : {}) }, io.env);
      const r = runTimer(action as TimerAction, {
        layout: loaded.layout,
        seed: loaded.settings.nodeName ?? "",
        ...(opts.binary ? { binary: opts.binary } : {}),
        ...(opts.scheduler ? { scheduler: opts.scheduler } : {}),
      });
      setResult({ json: Boolean(opts.json), value: r, text: `${r.message}\n` });
    });
  }

  program
    .command("restart-static-pods", { hidden: true })
    .description("restart the static pods whose certificates changed (the default post-renew hook on control planes)")
    .argument("[pods...]", "static pod names (default: from NODE_JOIN_RENEWED)")
    .option("--root <dir>", "operate on this root directory instead of /")
    .option("--wait <duration>", "how long the manifests stay away (the kubelet checks every 20s)", "25s")
    .action(async (pods: string[], opts: { root?: string; wait: string }) => {
      const waitMs = parseDuration(opts.wait);
      if (waitMs === undefined) throw new UsageError(`--wait: must be a duration such as 25s (got ${JSON.stringify(opts.wait)})`);
      const rt = runtime(opts.root ?? io.env.NODE_JOIN_ROOT ?? "/", io);
      const names = pods.length ? pods : podsForKinds((io.env.NODE_JOIN_RENEWED ?? "").split(",").filter(Boolean));
      const restarted = await restartStaticPods(names, rt.layout, waitMs, rt.clock, rt.log);
      setResult({ json: false, value: { ok: true, restarted }, text: `restarted static pods: ${restarted.join(", ") || "none"}\n` });
    });

  addGlobal(program.command("status").description("show certificates and CAs with expiry, like kubeadm certs check-expiration"))
    .option("--role <role>", "role whose certificates to list (default: from the config, else worker)")
    .action((opts: GlobalOptions & { role?: string }) => {
      const loaded = loadSettings({ ...opts }, io.env);
      const role = (opts.role ?? loaded.settings.role) as "worker" | "control-plane";
      const r = collectStatus(role, loaded.layout, new Date(systemClock.now()));
      if (loaded.configFile) refreshMetrics(loaded.settings, loaded.layout, undefined, { command: "status", success: true, time: new Date() }, (l) => io.stderr(`node-join: ${l}\n`));
      setResult({ json: Boolean(opts.json), value: r, text: formatStatus(r) });
    });

  const discoverCmd = program.command("discover").description("print the node name and addresses that would go into the CSRs").option("--json", "machine-readable output");
  for (const key of ["nodeName", "ips", "dnsNames", "interface"]) {
    const spec = OPTIONS.find((o) => o.key === key)!;
    const opt = new Option(spec.type === "list" ? `--${spec.flag} <${spec.valueName}>` : `--${spec.flag} <${spec.valueName}>`, spec.description);
    if (spec.type === "list") opt.argParser(collect);
    discoverCmd.addOption(opt);
  }
  discoverCmd.action(async (opts: GlobalOptions & Record<string, unknown>) => {
    const loaded = loadSettings({ ...opts, root: "/" }, io.env);
    const r = await runDiscover(loaded.settings);
    setResult({ json: Boolean(opts.json), value: { ok: true, command: "discover", ...r }, text: formatDiscover(r) });
  });

  program
    .command("version")
    .description("print node-join's version, the Node.js inside and the architecture")
    .option("--json", "machine-readable output")
    .action((opts: { json?: boolean }) => {
      setResult({
        json: Boolean(opts.json),
        value: { ok: true, command: "version", version: agentVersion(), node: process.version, platform: process.platform, arch: process.arch },
        text: `${versionLine()}\n`,
      });
    });
  return program;
}

/** Runs the CLI and returns the exit code; errors are mapped here and nowhere else. */
export async function main(argv: string[], io: Io): Promise<number> {
  const wantsJson = argv.includes("--json");
  let result: { json: boolean; value: unknown; text: string } | undefined;
  // join's flags are needed to run join or to show its help; any other command named first runs without them.
  const otherCommand = argv[0] !== undefined && !argv[0].startsWith("-") && argv[0] !== "join" && argv[0] !== "help";
  const program = buildProgram(io, (r) => (result = r), !otherCommand);
  try {
    await program.parseAsync(argv, { from: "user" });
    if (result) io.stdout(result.json ? `${JSON.stringify(result.value, null, 2)}\n` : result.text);
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return ExitCode.ok;
      if (wantsJson) io.stdout(`${JSON.stringify({ ok: false, exitCode: ExitCode.usage, error: err.message.replace(/^error: /, "") })}\n`);
      return ExitCode.usage;
    }
    const code = err instanceof NodeJoinError ? err.exitCode : ExitCode.other;
    const message = errorMessage(err).split("\n")[0]!;
    io.stderr(`node-join: error: ${message}\n`);
    if (wantsJson) io.stdout(`${JSON.stringify({ ok: false, exitCode: code, error: message })}\n`);
    if (!(err instanceof NodeJoinError) && io.env.NODE_JOIN_DEBUG) io.stderr(`${(err as Error).stack ?? ""}\n`);
    return code;
  }
}

const isEntry = isSea() || (typeof process.argv[1] === "string" && /node-join(\.cjs)?$|main\.(ts|js)$/.test(process.argv[1]));

if (isEntry) {
  // A closed pipe (`node-join status | head`) is not an error of ours.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  });
  const args = process.argv.slice(2);
  main(args, {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
  }).then((code) => {
    process.exitCode = code;
  });
}
