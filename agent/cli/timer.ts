// `node-join timer install | remove | status`: the systemd timer (or cron line) that runs renew.
import { Option, type Command } from "commander";
import { loadSettings } from "../config/load.js";
import { runTimer, type Scheduler } from "../ops/timer.js";
import { examples, type Cli } from "./context.js";

const HELP = examples([
  "node-join timer status",
  "node-join timer install --scheduler cron          # where there is no systemd",
  "node-join timer install --root /target --binary /usr/bin/node-join",
]);

const DESCRIPTIONS = {
  install:
    "install the renewal timer: systemd units, or a cron line where there is no systemd (either replaces the other)",
  remove: "remove the renewal timer: the systemd units and the cron line",
  status: "show whether the renewal timer is installed, enabled and when it runs next",
} as const;
const SUB_HELP = {
  install: examples([
    "node-join timer install                    # systemd where it runs, else cron",
    "node-join timer install --scheduler cron   # where there is no systemd",
  ]),
  remove: examples(["node-join timer remove", "node-join timer remove --root /target"]),
  status: examples(["node-join timer status", "node-join timer status --json | jq .installed"]),
};

export function registerTimer(program: Command, cli: Cli): void {
  const timerCmd = program
    .command("timer")
    .description("install, remove or show the systemd timer (or cron line) that runs renew")
    .addHelpText("after", HELP);
  for (const action of ["install", "remove", "status"] as const) {
    const sub = timerCmd.command(action).description(DESCRIPTIONS[action]);
    sub
      .option("--root <dir>", "operate on this root directory instead of /")
      .option("--json", "machine-readable output");
    if (action === "install") {
      sub.option(
        "--binary <path>",
        "absolute path of the node-join the units run; under --root, the file there or its path on the booted host (default: this binary's installed path)",
      );
      sub.addOption(
        new Option(
          "--scheduler <kind>",
          "where the timer goes (auto: systemd when installed on the root, else cron)",
        )
          .choices(["auto", "systemd", "cron"])
          .default("auto"),
      );
    }
    sub.addHelpText("after", SUB_HELP[action]);
    sub.action(
      (opts: {
        root?: string;
        json?: boolean;
        binary?: string;
        scheduler?: "auto" | Scheduler;
      }) => {
        // An empty --root is passed on, to be refused: never read as "/".
        const loaded = loadSettings(opts.root === undefined ? {} : { root: opts.root }, cli.io.env);
        const rt = cli.runtime(loaded.layout.root);
        const r = runTimer(action, {
          layout: loaded.layout,
          seed: loaded.settings.nodeName ?? "",
          metricsTextfile: loaded.settings.metrics.textfile,
          wanted: loaded.settings.timer.enabled,
          log: rt.log,
          now: new Date(rt.clock.now()),
          ...(opts.binary !== undefined ? { binary: opts.binary } : {}),
          ...(opts.scheduler ? { scheduler: opts.scheduler } : {}),
        });
        cli.setResult({ json: Boolean(opts.json), value: r, text: `${r.message}\n` });
      },
    );
  }
}
