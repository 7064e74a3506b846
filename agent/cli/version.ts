// `node-join version`.
import type { Command } from "commander";
import { agentVersion, versionLine } from "../common/version.js";
import { examples, type Cli } from "./context.js";

const HELP = examples(["node-join version", "node-join version --json | jq -r .version"]);

export function registerVersion(program: Command, cli: Cli): void {
  program
    .command("version")
    .description("print node-join's version, the Node.js inside and the architecture")
    .option("--json", "machine-readable output")
    .addHelpText("after", HELP)
    .action((opts: { json?: boolean }) => {
      const value = {
        ok: true,
        command: "version",
        version: agentVersion(),
        node: process.version,
        platform: process.platform,
        arch: process.arch,
      };
      cli.setResult({ json: Boolean(opts.json), value, text: `${versionLine()}\n` });
    });
}
