// commander options generated from the settings table (config/options.ts).
import { Option, type Command } from "commander";
import { optionGroup, type OptionKey, type OptionSpec } from "../config/options.js";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A repeatable option (a list in the settings table): completion offers it again. */
export function isRepeatable(opt: Option): boolean {
  return opt.parseArg === collect;
}

export function addOptionFlags(cmd: Command, specs: readonly OptionSpec<OptionKey>[]): Command {
  for (const spec of specs) {
    if (!spec.flag) continue;
    const flag =
      spec.type === "bool" ? `--${spec.flag}` : `--${spec.flag} <${spec.valueName ?? "value"}>`;
    // Under its group's heading ("Etcd CA options:") the description drops the "etcd CA: " that
    // names the group in the README's table.
    const group = optionGroup(spec);
    const description =
      group.prefix && spec.description.startsWith(group.prefix)
        ? spec.description.slice(group.prefix.length)
        : spec.description;
    const opt = new Option(flag, description).helpGroup(group.heading);
    if (spec.type === "list") opt.argParser(collect);
    if (spec.choices) opt.choices(spec.choices as string[]);
    cmd.addOption(opt);
  }
  return cmd;
}
