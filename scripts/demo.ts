// `npm run demo`: starts a real `cfssl serve` with a fresh CA, joins a worker into a temporary
// root with the bundled CLI, prints `node-join status`, stops the CA. Nothing outside /tmp changes.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startCfssl } from "./lib/cfssl.js";

const BUNDLE = fileURLToPath(new URL("../dist/node-join.cjs", import.meta.url)); // npm run build (demo.sh runs it)
const ca = await startCfssl();
const root = mkdtempSync(join(tmpdir(), "node-join-demo-"));
try {
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  const keyFile = ca.writeAuthKey(join(root, "etc/node-join/ca-auth.key"));
  console.log(`# CFSSL CA on ${ca.url} (pin ${ca.pin}); demo root ${root}\n`);
  const run = (args: string[]) => {
    console.log(`$ node-join ${args.join(" ")}`);
    const r = spawnSync(process.execPath, [BUNDLE, ...args], { stdio: "inherit" });
    console.log();
    if (r.status !== 0) throw new Error(`node-join ${args[0]} exited ${r.status}`);
  };
  run([
    "join",
    "--root",
    root,
    "--api-server",
    "https://192.0.2.10:6443",
    "--ca-url",
    ca.url,
    "--ca-cert-hash",
    ca.pin,
    "--ca-auth-key-file",
    keyFile,
    "--client-profile",
    "client",
    "--serving-profile",
    "serving",
    "--node-name",
    "demo-worker",
    "--ip",
    "192.0.2.21",
  ]);
  run(["status", "--root", root]);
  console.log(`# files written under ${root}:`);
  spawnSync("find", [root, "-type", "f", "-o", "-type", "l"], { stdio: "inherit" });
} finally {
  await ca.stop();
}
