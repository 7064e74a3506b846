// The main script of the single binary (Node SEA): loads the agent from the binary's assets.
// See ./loader.ts for why the agent is not the main script itself.
import { getRawAsset, isSea } from "node:sea";
import { cacheAssets, createLoader, publicBuiltins } from "./loader.js";

if (!isSea())
  throw new Error(
    "dist/sea/main.cjs runs only inside the single binary; run dist/node-join.cjs instead",
  );

const text = (key: string): string => Buffer.from(getRawAsset(key) as ArrayBuffer).toString("utf8");

const debug = process.env.NODE_JOIN_DEBUG
  ? (line: string) => void process.stderr.write(`node-join: debug: ${line}\n`)
  : undefined;
if (debug) {
  // process.moduleLoadList: not in @types/node, present in every Node this runs.
  const list = () => (process as unknown as { moduleLoadList: string[] }).moduleLoadList;
  process.on("exit", () => debug(`sea: builtins: ${publicBuiltins(list()).join(" ")}`));
}

createLoader(
  (name) => {
    for (const cacheName of cacheAssets(name, process.argv[2])) {
      try {
        const cache = new Uint8Array(getRawAsset(cacheName) as ArrayBuffer);
        return { source: text(`${name}.js`), cache, cacheName };
      } catch {
        // not packaged: the next one
      }
    }
    return { source: text(`${name}.js`) }; // packaged without a cache: V8 compiles from source
  },
  {
    require,
    filename: process.execPath,
    ...(debug ? { debug } : {}),
  },
).load("core");
