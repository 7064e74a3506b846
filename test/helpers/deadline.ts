// A call that may block forever (a read of a FIFO), run in a child process so that a hang cannot
// stop the test runner. The deadline starts when the child reaches the call, not when it is
// spawned: loading node and tsx takes as long as the machine's load makes it, the call itself
// does not.
import { spawn } from "node:child_process";

export interface DeadlineRun {
  /** What the code printed after reaching the call. */
  stdout: string;
  stderr: string;
  /** Set when the deadline killed it. */
  signal: NodeJS.Signals | null;
}

const REACHED = "\u0001reached\n";

/**
 * Runs `code` (an ES module, TypeScript through tsx) in a child node; `call` is the blocking
 * statement, run after `code`'s imports. The child is killed when `call` has not returned
 * `deadlineMs` after it started.
 */
export function runWithDeadline(
  code: string,
  call: string,
  deadlineMs = 15_000,
): Promise<DeadlineRun> {
  const source = `${code}\nprocess.stdout.write(${JSON.stringify(REACHED)});\n${call}`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", source], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let timer: NodeJS.Timeout | undefined;
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    if (!timer && out.includes(REACHED))
      timer = setTimeout(() => child.kill("SIGKILL"), deadlineMs);
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (_code, signal) => {
      clearTimeout(timer);
      const at = out.indexOf(REACHED);
      resolve({ stdout: at < 0 ? out : out.slice(at + REACHED.length), stderr: err, signal });
    });
  });
}
