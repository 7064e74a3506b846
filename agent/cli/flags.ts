// commander options generated from the settings table (config/options.ts).
import { Option, type Command } from "commander";
import type { OptionKey, OptionSpec } from "../config/options.js";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function addOptionFlags(cmd: Command, specs: readonly OptionSpec<OptionKey>[]): Command {
  for (const spec of specs) {
    if (!spec.flag) continue;
    const flag =
      spec.type === "bool" ? `--${spec.flag}` : `--${spec.flag} <${spec.valueName ?? "value"}>`;
    const opt = new Option(flag, spec.description);
    if (spec.type === "list") opt.argParser(collect);
    if (spec.choices) opt.choices(spec.choices as string[]);
    cmd.addOption(opt);
  }
  return cmd;
}
