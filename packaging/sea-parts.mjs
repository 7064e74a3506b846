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
 * Returns the loader and the core's exports ({ main, ... }). Each part reads the code cache the
 * binary would read for `command` (agent/sea/loader.ts cacheAssets) when present.
 * @param {string} dir a parts directory: loader.cjs, core.js, <chunk>.js, optional caches
 * @param {{ command?: string, caches?: boolean }} [options] caches: false reads none (training)
 * @returns {{ loader: import("../agent/sea/loader.js").SeaLoader, core: Core }}
 */
export function loadCore(dir, { command, caches = true } = {}) {
  const partsDir = resolve(dir);
  /** @type {typeof import("../agent/sea/loader.js")} */
  const { cacheAssets, createLoader } = require(join(partsDir, "loader.cjs"));
  const loader = createLoader(
    (name) => {
      const source = readFileSync(join(partsDir, `${name}.js`), "utf8");
      const cacheName = caches
        ? cacheAssets(name, command).find((c) => existsSync(join(partsDir, c)))
        : undefined;
      return cacheName
        ? { source, cache: readFileSync(join(partsDir, cacheName)), cacheName }
        : { source };
    },
    { require, filename: join(partsDir, "core.js") },
  );
  return { loader, core: /** @type {Core} */ (loader.load("core")) };
}
