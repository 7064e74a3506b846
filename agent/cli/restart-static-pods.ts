// `node-join restart-static-pods`: the default post-renew hook on control planes.
import type { Command } from "commander";
import { parseDuration } from "../common/duration.js";
import { UsageError } from "../common/errors.js";
import { restartStaticPods } from "../ops/static-pods.js";
import { podsForKinds } from "../pki/certs.js";
import { examples, type Cli } from "./context.js";

const HELP = examples([
  "node-join restart-static-pods kube-apiserver",
  "# as renew's hook runs it: the pods of the renewed certificates",
  "NODE_JOIN_RENEWED=apiserver,front-proxy-client node-join restart-static-pods",
]);

export function registerRestartStaticPods(program: Command, cli: Cli): void {
  program
    .command("restart-static-pods")
    .description(
      "restart the static pods whose certificates changed (the default post-renew hook on control planes)",
    )
    .argument("[pods...]", "static pod names (default: from NODE_JOIN_RENEWED)")
    .option("--root <dir>", "operate on this root directory instead of /")
    .option(
      "--wait <duration>",
      "how long the manifests stay away (the kubelet checks every 20s)",
      "25s",
    )
    .addHelpText("after", HELP)
    .action(async (pods: string[], opts: { root?: string; wait: string }) => {
      const waitMs = parseDuration(opts.wait);
      if (waitMs === undefined)
        throw new UsageError(
          `--wait: must be a duration such as 25s (got ${JSON.stringify(opts.wait)})`,
        );
      const rt = cli.runtime(opts.root ?? cli.io.env.NODE_JOIN_ROOT ?? "/");
      const names = pods.length
        ? pods
        : podsForKinds((cli.io.env.NODE_JOIN_RENEWED ?? "").split(",").filter(Boolean));
      const restarted = await restartStaticPods(names, rt.layout, waitMs, rt.clock, rt.log);
      cli.setResult({
        json: false,
        value: { ok: true, restarted },
        text: `restarted static pods: ${restarted.join(", ") || "none"}\n`,
      });
    });
}
