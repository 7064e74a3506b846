// One description of the program's commands, arguments and options, walked from the commander
// program itself (so from the settings table, through flags.ts): the shell completions
// (completion.ts) and the man page (man.ts) are two renderings of it, and cannot disagree with
// --help.
import type { Command, Help, Option } from "commander";
import { isRepeatable } from "./flags.js";

/** What a value completes to: a file, a directory, one of its choices, or nothing known. */
export type ValueKind = "file" | "dir" | "choice" | "other";

export interface OptionRef {
  /** "--root", "-h": every spelling, long first. */
  readonly names: string[];
  /** The value's name as help shows it (`<dir>`: "dir"), for an option that takes one. */
  readonly value?: { readonly name: string; readonly kind: ValueKind; readonly choices: string[] };
  /** The option's own description. */
  readonly description: string;
  /** As --help shows it: with its choices and default. */
  readonly helpDescription: string;
  readonly repeatable: boolean;
  readonly group: string;
}

export interface ArgumentRef {
  readonly name: string;
  readonly description: string;
  readonly required: boolean;
  readonly variadic: boolean;
  readonly choices: string[];
}

export interface CommandRef {
  /** From the program down: [] for node-join itself, ["timer", "install"]. */
  readonly path: string[];
  readonly name: string;
  /** "node-join timer install [options]". */
  readonly usage: string;
  readonly description: string;
  readonly args: ArgumentRef[];
  readonly options: OptionRef[];
  readonly commands: CommandRef[];
}

// Value names that are paths (flags.ts takes them from the settings table's valueName).
const FILE_VALUES = new Set(["file", "pem", "path"]);
const DIR_VALUES = new Set(["dir"]);

function valueOf(opt: Option): OptionRef["value"] {
  const name = /[<[]([^>\]]+)[>\]]/.exec(opt.flags)?.[1];
  if (name === undefined) return undefined;
  const choices = opt.argChoices ?? [];
  const kind: ValueKind = choices.length
    ? "choice"
    : FILE_VALUES.has(name)
      ? "file"
      : DIR_VALUES.has(name)
        ? "dir"
        : "other";
  return { name, kind, choices };
}

function optionRef(o: Option, help: Help): OptionRef {
  const value = valueOf(o);
  return {
    names: [o.long, o.short].filter((n): n is string => n !== undefined),
    ...(value ? { value } : {}),
    description: o.description,
    helpDescription: help.optionDescription(o),
    repeatable: isRepeatable(o),
    group: o.helpGroupHeading ?? "Options:",
  };
}

/** The program and every visible command below it, with commander's implicit help command. */
export function describeProgram(cmd: Command, path: string[] = []): CommandRef {
  const help = cmd.createHelp();
  return {
    path,
    name: cmd.name(),
    usage: ["node-join", ...path, cmd.usage()].join(" "),
    description: cmd.description(),
    args: cmd.registeredArguments.map((a) => ({
      name: a.name(),
      description: a.description,
      required: a.required,
      variadic: a.variadic,
      choices: a.argChoices ?? [],
    })),
    options: help.visibleOptions(cmd).map((o) => optionRef(o, help)),
    commands: help.visibleCommands(cmd).map((sub) => describeProgram(sub, [...path, sub.name()])),
  };
}

/** Every command of the tree, the program first, parents before their subcommands. */
export function allCommands(ref: CommandRef): CommandRef[] {
  return [ref, ...ref.commands.flatMap(allCommands)];
}
