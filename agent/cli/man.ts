// `node-join man`: the manual page, node-join(1) in roff (man(7) macros), rendered from the same
// walk over the program as the completions (reference.ts), with the exit codes of --help and the
// environment variables of the settings table. The .deb ships it (packaging/deb.mjs runs this
// command); `node-join man | man -l -` reads it where only the binary is installed.
import type { Command } from "commander";
import { agentVersion } from "../common/version.js";
import { ALL_OPTIONS, envName } from "../config/options.js";
import { rootOf } from "./completion.js";
import { EXIT_CODES_HELP, examples, type Cli } from "./context.js";
import { allCommands, describeProgram, type CommandRef, type OptionRef } from "./reference.js";

const HELP = examples([
  "node-join man | man -l -",
  "node-join man | gzip -9n > /usr/local/share/man/man1/node-join.1.gz",
]);

/**
 * Text for a roff line: a backslash is roff's escape character, and a line that starts with a dot
 * or a quote would be read as a request (groff_man(7)).
 */
export function roffText(s: string): string {
  return s
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .replace(/^([.'])/gm, "\\&$1");
}

const bold = (s: string): string => `\\fB${roffText(s)}\\fR`;
const italic = (s: string): string => `\\fI${roffText(s)}\\fR`;

function optionItem(o: OptionRef): string {
  const names = o.names.map(bold).join(", ");
  return `.TP\n${names}${o.value ? ` ${italic(o.value.name)}` : ""}\n${roffText(o.helpDescription)}`;
}

function commandSection(c: CommandRef): string {
  const groups = new Map<string, OptionRef[]>();
  for (const o of c.options) groups.set(o.group, [...(groups.get(o.group) ?? []), o]);
  const args = c.args.map(
    (a) => `.TP\n${italic(a.name)}${a.variadic ? "..." : ""}\n${roffText(a.description)}`,
  );
  return [
    `.SS ${roffText(c.usage)}`,
    roffText(c.description),
    ...args,
    ...[...groups].flatMap(([heading, opts]) => [
      `.PP\n${bold(heading.replace(/:$/, ""))}`,
      ...opts.map(optionItem),
    ]),
  ].join("\n");
}

/** The exit codes exactly as --help lists them. */
export function exitCodes(): [string, string][] {
  return [...EXIT_CODES_HELP.matchAll(/^ {2}(\d+) {2}(.*)$/gm)].map((m) => [m[1]!, m[2]!]);
}

export function renderMan(program: CommandRef): string {
  const commands = allCommands(program).filter(
    (c) => c.path.length > 0 && c.commands.length === 0 && c.name !== "help",
  );
  const env = ALL_OPTIONS.filter((o) => o.flag).map(
    (o) =>
      `.TP\n${bold(envName(o.flag!))}\nas ${bold(`--${o.flag}`)}; config key ${bold(o.key)}${o.type === "list" ? " (a comma-separated list)" : ""}`,
  );
  return [
    `.TH NODE\\-JOIN 1 "" "node-join ${roffText(agentVersion())}" "User Commands"`,
    ".SH NAME",
    `node\\-join \\- ${roffText(program.description)}`,
    ".SH SYNOPSIS",
    ...commands.map((c) => `.B ${roffText(c.usage)}\n.br`),
    ".SH DESCRIPTION",
    roffText(program.description) + ".",
    ".PP",
    roffText(
      "Every setting has a config key; most also have a flag and an environment variable. Precedence: flags, then the environment (NODE_JOIN_*), then the config file, then the defaults. Each command's --help shows examples.",
    ),
    ".SH COMMANDS",
    ...commands.map(commandSection),
    ".SH EXIT STATUS",
    ...exitCodes().map(([code, meaning]) => `.TP\n${bold(code)}\n${roffText(meaning)}`),
    ".SH ENVIRONMENT",
    ...env,
    ".SH FILES",
    `.TP\n${bold("/etc/node-join/config.yaml")}\n${roffText("the node's config, written by join (under --root when given)")}`,
    `.TP\n${bold("/var/lib/node-join/lock")}\n${roffText("held while node-join runs")}`,
    ".SH SEE ALSO",
    "kubeadm(1), systemd.timer(5), cron(8)",
    "",
  ].join("\n");
}

export function registerMan(program: Command, cli: Cli): void {
  program
    .command("man")
    .description("print this manual page (roff), as the .deb installs it")
    .addHelpText("after", HELP)
    .action((_opts: unknown, cmd: Command) => {
      const text = renderMan(describeProgram(rootOf(cmd)));
      cli.setResult({ json: false, value: { ok: true }, text });
    });
}
