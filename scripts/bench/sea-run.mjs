// Runs node-join from the x64 single binary's parts and code caches (.cache/sea/x64, what
// packaging/package.mjs put into the binary) as a plain node script: the binary itself ignores node
// options such as --cpu-prof, so the bench profiles the same code and caches this way.
//   node --cpu-prof scripts/bench/sea-run.mjs <parts dir> <node-join args...>
import { loadCore } from "../../packaging/sea-parts.mjs";

const [parts, ...args] = process.argv.slice(2);
// The code caches the binary reads for this command (idle ones for renew, status, version).
const { core } = loadCore(parts, { command: args[0] });
process.exitCode = await core.main(args, {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  env: process.env,
});
