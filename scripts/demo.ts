// `npm run demo`: starts a real `cfssl serve` with a fresh CA, joins a worker into a temporary
// root with the bundled CLI, prints `node-join status`, stops the CA. Nothing outside /tmp changes.
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { cfsslWorkerJoin } from "./lib/args.js";
import { startCfssl } from "./lib/cfssl.js";

const BUNDLE = fileURLToPath(new URL("../dist/node-join.cjs", import.meta.url)); // npm run build (demo.sh runs it)
const ca = await startCfssl();
const root = mkdtempSync(join(tmpdir(), "node-join-demo-"));
try {
  const keyFile = ca.installAuthKey(root);
  console.log(`# CFSSL CA on ${ca.url} (pin ${ca.pin}); demo root ${root}\n`);
  const run = (args: string[]) => {
    console.log(`$ node-join ${args.join(" ")}`);
    const r = spawnSync(process.execPath, [BUNDLE, ...args], { stdio: "inherit" });
    console.log();
    if (r.status !== 0) throw new Error(`node-join ${args[0]} exited ${r.status}`);
  };
  run(
    cfsslWorkerJoin(root, ca, {
      "api-server": "https://192.0.2.10:6443",
      "ca-auth-key-file": keyFile,
      "node-name": "demo-worker",
      ip: "192.0.2.21",
    }),
  );
  run(["status", "--root", root]);
  console.log(`# files written under ${root}:`);
  spawnSync("find", [root, "-type", "f", "-o", "-type", "l"], { stdio: "inherit" });
} finally {
  await ca.stop();
}
