#!/usr/bin/env node
// The CLI: one file per command registers itself here, and this is the one place where errors
// become exit codes and messages.
import { printable } from "../common/printable.js";
import { Command, CommanderError } from "commander";
import { isSea, readline } from "../common/builtins.js";
import { mean, prefixedBy } from "../common/suggest.js";
import {
  errorMessage,
  ExitCode,
  NodeJoinError,
  permissionHint,
  UsageError,
} from "../common/errors.js";
import { versionLine } from "../common/version.js";
import {
  EXIT_CODES_HELP,
  makeCli,
  type CommandResult,
  type Io,
  type RuntimeSeams,
} from "./context.js";
import { registerCompletion } from "./completion.js";
import { registerDiscover } from "./discover.js";
import { registerJoin } from "./join.js";
import { registerLeave } from "./leave.js";
import { registerMan } from "./man.js";
import { registerPin } from "./pin.js";
import { registerProbe } from "./probe.js";
import { registerRenew } from "./renew.js";
import { registerRestartStaticPods } from "./restart-static-pods.js";
import { registerStatus } from "./status.js";
import { registerTimer } from "./timer.js";
import { registerTrust } from "./trust.js";
import { registerVersion } from "./version.js";

export { EXIT_CODES_HELP };

/**
 * `withJoinFlags: false` leaves out join's flags (one per option in the settings table): building
 * them
 * is a measurable part of a `renew` with nothing due, which runs twice a day on every node.
 */
export function buildProgram(
  io: Io,
  setResult: (r: CommandResult) => void,
  withJoinFlags = true,
  seams: RuntimeSeams = {},
): Command {
  const program = new Command("node-join")
    .description(
      "Join a Kubernetes node: local keys, a remote CA (CFSSL, step-ca), verified certificates and kubeconfigs",
    )
    .version(versionLine(), "-V, --version", "print the version line (as node-join version does)")
    .addHelpText("after", EXIT_CODES_HELP)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeOut: io.stdout,
      writeErr: io.stderr,
      // commander's own error lines are not printed: main() prints each failure as one line.
      outputError: () => undefined,
      getOutHelpWidth: () => helpWidth(process.stdout, io),
      getErrHelpWidth: () => helpWidth(process.stderr, io),
    })
    // join's longest flags leave about 35 columns of an 80-column terminal for the description;
    // commander wraps only from 40 on (its minWidthToWrap).
    .configureHelp({ minWidthToWrap: 24 });
  const cli = makeCli(io, setResult, withJoinFlags, seams);
  for (const register of [
    registerJoin,
    registerRenew,
    registerLeave,
    registerTimer,
    registerTrust,
    registerRestartStaticPods,
    registerStatus,
    registerDiscover,
    registerPin,
    registerProbe,
    registerVersion,
    registerCompletion,
    registerMan,
  ]) {
    register(program, cli);
  }
  return program;
}

/**
 * commander's message as one line without its own "error: " prefix, its suggestion folded in:
 * "error: unknown option '--ca-ulr'\n(Did you mean --ca-url?)" becomes
 * "unknown option '--ca-ulr' (did you mean --ca-url?)" (commander lib/suggestSimilar.js words it).
 */
export function commanderMessage(err: CommanderError): string {
  return err.message
    .replace(/^error: /, "")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .join(" ")
    .replace("(Did you mean", "(did you mean");
}

/**
 * What main() reports for a thrown error: the error itself, or for commander's the UsageError it
 * stands for; undefined when commander printed what was asked (help, version).
 */
function asFailure(
  err: unknown,
  program: Command,
  argv: string[],
): { error: unknown; helpOnly?: boolean } | undefined {
  if (!(err instanceof CommanderError)) return { error: err };
  // commander.help with exit code 0 is `node-join help [command]`, asked for like --help.
  if (
    err.code === "commander.helpDisplayed" ||
    err.code === "commander.version" ||
    (err.code === "commander.help" && err.exitCode === 0)
  )
    return undefined;
  // The help instead of a run (bare `node-join`, `node-join timer`): printed on stderr, as git
  // prints its usage, and a usage error without a second message.
  if (err.code === "commander.help") return { error: err, helpOnly: true };
  const message = commanderMessage(err);
  return { error: new UsageError(`${message}${unknownOptionHint(err, message, program, argv)}`) };
}

/**
 * For an unknown option commander found nothing close to, the flags it begins
 * ("--ca-auth-key": "--ca-auth-key-file"), among the options of the command argv names and of
 * its parents, as commander's own suggestion looks.
 */
function unknownOptionHint(
  err: CommanderError,
  message: string,
  program: Command,
  argv: string[],
): string {
  const flag = /^unknown option '([^']+)'$/.exec(message)?.[1];
  if (err.code !== "commander.unknownOption" || !flag) return "";
  const chain = [program];
  for (const word of argv) {
    if (word === "--") break;
    const sub = chain.at(-1)!.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (sub) chain.push(sub);
  }
  const flags = chain.flatMap((c) => c.options.flatMap((o) => (o.long ? [o.long] : [])));
  const found = prefixedBy(flag.split("=")[0]!, flags);
  return found.length ? ` (${mean(found)})` : "";
}

/**
 * The terminal's width for help texts, else $COLUMNS, else 80 (commander's default when writing to
 * a pipe).
 */
function helpWidth(stream: { columns?: number; isTTY?: boolean }, io: Io): number {
  return (stream.isTTY && stream.columns) || Number(io.env.COLUMNS) || 80;
}

/** Commands that need join's flags: join itself, and those that show or describe them. */
const WITH_JOIN_FLAGS = new Set(["join", "help", "completion", "man"]);

/** Runs the CLI and returns the exit code; errors are mapped here and nowhere else. */
export async function main(argv: string[], io: Io, seams: RuntimeSeams = {}): Promise<number> {
  const wantsJson = argv.includes("--json");
  let result: CommandResult | undefined;
  // join's flags are needed to run join or to show its help; any other command named first runs
  // without them, and so does --version (as quick as `node-join version`).
  const first = argv[0];
  const otherCommand =
    first !== undefined &&
    (first === "--version" ||
      first === "-V" ||
      (!first.startsWith("-") && !WITH_JOIN_FLAGS.has(first)));
  const program = buildProgram(io, (r) => (result = r), !otherCommand, seams);
  try {
    await program.parseAsync(argv, { from: "user" });
    // JSON escapes control characters itself; human output quotes CAs, proxies and file names.
    if (result)
      io.stdout(
        result.json
          ? `${JSON.stringify(result.value, null, 2)}\n`
          : printable(result.text, { lines: true }),
      );
    return result?.exitCode ?? ExitCode.ok;
  } catch (thrown) {
    const failure = asFailure(thrown, program, argv);
    if (!failure) return ExitCode.ok;
    if (failure.helpOnly) return ExitCode.usage;
    const err = failure.error;
    const code = err instanceof NodeJoinError ? err.exitCode : ExitCode.other;
    const hint = permissionHint(err, process.geteuid?.() === 0);
    const message = `${errorMessage(err).split("\n")[0]!}${hint ? `: ${hint}` : ""}`;
    io.stderr(`node-join: error: ${printable(message)}\n`);
    if (wantsJson) io.stdout(`${JSON.stringify({ ok: false, exitCode: code, error: message })}\n`);
    if (!(err instanceof NodeJoinError) && io.env.NODE_JOIN_DEBUG)
      io.stderr(`${(err as Error).stack ?? ""}\n`);
    return code;
  }
}

/** Runs main() for this process: the binary's and the bundle's entry. */
export function runProcess(argv: string[] = process.argv.slice(2), seams: RuntimeSeams = {}): void {
  // A closed pipe (`node-join status | head`) is not an error of ours.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  });
  const io: Io = {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
    isTerminal: () => Boolean(process.stdin.isTTY && process.stderr.isTTY),
    prompt: async (question) => {
      // On stderr, as the listing before it: stdout stays the result (--json).
      const rl = readline().createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
  void main(argv, io, seams).then((code) => {
    process.exitCode = code;
  });
}

const isEntry =
  isSea() ||
  (typeof process.argv[1] === "string" &&
    /node-join(\.cjs)?$|main\.(ts|js)$/.test(process.argv[1]));
if (isEntry) runProcess();
