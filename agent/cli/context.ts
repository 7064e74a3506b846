// What every command file gets from the CLI: the process's streams and environment, a way to hand
// back its result, and the runtime its run receives.
import { printable } from "../common/printable.js";
import type { Command } from "commander";
import { systemClock } from "../common/clock.js";
import type { ExitCodeValue } from "../common/errors.js";
import type { Runtime } from "../engine/runtime.js";
import { layout } from "../store/layout.js";

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** stdin and stderr are a terminal: a question may be asked (leave). Absent: they are not. */
  isTerminal?: () => boolean;
  /** Asks `question` on the terminal and resolves to the line answered. */
  prompt?: (question: string) => Promise<string>;
}

/** What a command prints: `value` as JSON with --json, else `text`. */
export interface CommandResult {
  json: boolean;
  value: unknown;
  text: string;
  /** A non-zero exit code that goes with the output (status: something needs attention). */
  exitCode?: ExitCodeValue;
}

/** The seams a test may set for an in-process or killed run (engine/runtime.ts). */
export type RuntimeSeams = Partial<Pick<Runtime, "backend" | "crashPoint" | "clock">>;

export interface Cli {
  io: Io;
  setResult: (r: CommandResult) => void;
  runtime: (root: string) => Runtime;
  /**
   * join's flags (one per option of the settings table) are built only where join or help needs
   * them.
   */
  withJoinFlags: boolean;
}

export function makeCli(
  io: Io,
  setResult: (r: CommandResult) => void,
  withJoinFlags: boolean,
  seams: RuntimeSeams = {},
): Cli {
  return {
    io,
    setResult,
    withJoinFlags,
    runtime: (root) => ({
      layout: layout(root),
      env: io.env,
      clock: systemClock,
      // A log line may quote a CA, a proxy or a file name: one line, escaped (printable.ts).
      log: (line) => io.stderr(`node-join: ${printable(line)}\n`),
      ...seams,
    }),
  };
}

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
  8  status: a certificate, a CA or the renewal timer needs attention (missing,
     unreadable, key mismatch, expired, past its renewal deadline, or expiring
     within --warn-within)
  9  status: node-join never joined this root (run node-join join)
  10  leave --revoke: a certificate could not be revoked (nothing was removed;
      --force leaves anyway)
  11  the host's clock is not set (before a known floor, or off from the CA's
      Date by more than --clock-tolerance): nothing judged or written; retry
      once the clock is synchronised
  12  status: a join did not finish yet ("join pending: <why>");
      node-join-join.service retries it where a later attempt can fix it
`;

/** --root, --config and --json, as every command that reads the config takes them. */
export function addGlobal(cmd: Command, withConfig = true): Command {
  cmd.option(
    "--root <dir>",
    "operate on this root directory instead of / (paths and config under it)",
  );
  if (withConfig)
    cmd.option("--config <file>", "config file (default <root>/etc/node-join/config.yaml)");
  cmd.option("--json", "print a machine-readable result on stdout");
  return cmd;
}

/**
 * A command's help points to the exit codes: the main help and the man page list them once
 * (as git's subcommands leave theirs to git(1)), rather than every command repeating the table.
 */
export const EXIT_CODES_POINTER =
  "\nExit codes: see node-join --help or man node-join (the same for every command).\n";

/** Help text: examples after the options, then where the exit codes are. */
export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join("\n")}\n${EXIT_CODES_POINTER}`;
}
