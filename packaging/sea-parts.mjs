// Loads the single binary's parts (dist/sea, or a trained copy in .cache/sea/<arch>) as a plain
// node
// script, through the binary's own loader: for the training run (packaging/sea-train.mjs) and for
// the
// bench's CPU profile (scripts/bench/sea-run.mjs), which cannot run inside the binary itself.
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const require = createRequire(import.meta.url);

/**
 * @typedef {Pick<typeof import("../agent/cli/main.js"), "main">} Core what the core part
 * (agent/cli/main.ts) exports
 */

/**
 * Returns the loader and the core's exports ({ main, ... }); a part's <name>.cache is used when
 * present.
 * @param {string} dir a parts directory: loader.cjs, core.js, <chunk>.js, optional <name>.cache
 * @returns {{ loader: import("../agent/sea/loader.js").SeaLoader, core: Core }}
 */
export function loadCore(dir) {
  const partsDir = resolve(dir);
  /** @type {typeof import("../agent/sea/loader.js")} */
  const { createLoader } = require(join(partsDir, "loader.cjs"));
  const loader = createLoader(
    (name) => {
      const cacheFile = join(partsDir, `${name}.cache`);
      return {
        source: readFileSync(join(partsDir, `${name}.js`), "utf8"),
        ...(existsSync(cacheFile) ? { cache: readFileSync(cacheFile) } : {}),
      };
    },
    { require, filename: join(partsDir, "core.js") },
  );
  return { loader, core: /** @type {Core} */ (loader.load("core")) };
}
