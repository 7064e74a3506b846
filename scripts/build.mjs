// Bundles the agent into one CommonJS file (what becomes the single binary).
import { build } from "esbuild";
import { readFileSync, chmodSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
await build({
  entryPoints: ["agent/main.ts"],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  outfile: "dist/node-join.cjs",
  define: { __NODE_JOIN_VERSION__: JSON.stringify(pkg.version) },
  legalComments: "none",
  minify: true,
  keepNames: true,
  logLevel: "warning",
});
chmodSync("dist/node-join.cjs", 0o755);
