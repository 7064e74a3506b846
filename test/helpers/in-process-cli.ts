// Runs the CLI in this process, as the fast tier does: main() with collected output and the given
// environment (nothing of this process's).
import type { RuntimeSeams } from "../../agent/cli/context.js";
import { buildProgram, main } from "../../agent/cli/main.js";
import { describeProgram, type CommandRef } from "../../agent/cli/reference.js";
import type { CliResult } from "./cli.js";

export async function runMain(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  seams: RuntimeSeams = {},
): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const code = await main(
    args,
    {
      stdout: (t) => (stdout += t),
      stderr: (t) => (stderr += t),
      env,
    },
    seams,
  );
  return { code, stdout, stderr };
}

/** The program's commands and options, as completion and the man page walk them. */
export function programReference(): CommandRef {
  return describeProgram(
    buildProgram({ stdout: () => undefined, stderr: () => undefined, env: {} }, () => undefined),
  );
}
