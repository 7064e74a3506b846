// node-join's CLI with a crash point: `node --import tsx crash-entry.ts <step> <node-join args...>`
// runs the command and kills the process with SIGKILL when the install transaction reaches <step>
// ("stage", "journal", "move:<n>", "done"), as a power cut there would. The crash point is a seam
// of the runtime (agent/engine/runtime.ts); production code never reads it from the environment.
import { runProcess } from "../../agent/cli/main.js";

const [step, ...args] = process.argv.slice(2);
if (!step) throw new Error("usage: crash-entry.ts <step> <node-join args...>");
runProcess(args, {
  crashPoint: (at) => {
    if (at === step) process.kill(process.pid, "SIGKILL");
  },
});
