// Start-up of the single binary. The binary's SEA main script is this small loader; the agent
// ("core": agent + yaml + commander) and each heavy library that the agent imports dynamically
// (undici, systeminformation, @peculiar/x509, reflect-metadata: one "chunk" each) are SEA assets,
// each with a V8 code cache made at packaging time by a training run on the target architecture
// (packaging/sea-train.mjs). Why: V8 parsing and compiling the 1.5 MB single bundle was most of a
// `renew` with nothing due; now the core is compiled from its cache and a chunk is read only by a
// command that uses it (renew with nothing due loads the core and undici, nothing else).
// A rejected cache (another V8 or other flags) only costs time: V8 compiles from source instead.
import { Script } from "node:vm";

/** What the loader reads for one script: its source and, when there is one, its V8 code cache. */
export interface ScriptAsset {
  source: string;
  cache?: Uint8Array;
  /** The asset the cache came from (debug trace). */
  cacheName?: string;
}

/**
 * The commands the renewal timer and monitoring run, which have code caches of their own: a cache
 * holds every function compiled in the process that made it, and V8 reads all of it, so caches
 * trained by these commands alone (packaging/sea-train.mjs --idle) spare them reading join's
 * functions: about 8 % of the instructions of a `renew` with nothing due. A renew that issues
 * compiles what its cache lacks; other commands read the full caches.
 */
export const IDLE_COMMANDS: readonly string[] = ["renew", "status", "version"];

/** The code cache assets to try for a part, in order, for a command (process.argv[2]). */
export function cacheAssets(part: string, command: string | undefined): string[] {
  const idle = command !== undefined && IDLE_COMMANDS.includes(command);
  return [...(idle ? [`${part}.idle.cache`] : []), `${part}.cache`];
}

export type CacheState = "accepted" | "rejected" | "none";

export interface LoadedScript {
  name: string;
  script: Script;
  cache: CacheState;
  exports: unknown;
}

export interface SeaLoader {
  /** Runs a script once (the core, or a chunk) and returns its module.exports. */
  load(name: string): unknown;
  /** Scripts run so far, in order. */
  loaded(): LoadedScript[];
}

/**
 * The hook that chunk stubs in the core call: `globalThis[CHUNK_HOOK].chunk(name)` (see
 * packaging/build.mjs).
 */
export const CHUNK_HOOK = Symbol.for("node-join.sea");

// Same parameters as Node's CommonJS wrapper, so esbuild's CJS output runs unchanged. The source
// starts on a line of its own: positions in CPU profiles are then the part's own, one line down
// (scripts/bench/cpuprofile.ts maps them with the part's source map).
export const WRAPPER_LINES = 1;
/** The URL of a part in stack traces and CPU profiles. */
export const scriptUrl = (name: string): string => `node-join:${name}`;
const wrap = (source: string): string =>
  `(function (exports, require, module, __filename, __dirname) {\n${source}\n})`;

type Wrapper = (
  exports: unknown,
  require: NodeJS.Require,
  module: { exports: unknown },
  filename: string,
  dirname: string,
) => void;

export interface LoaderOptions {
  /**
   * The require the scripts get: the SEA's own, which loads builtins only (the scripts are
   * self-contained bundles).
   */
  require: NodeJS.Require;
  /** __filename of the scripts (the executable). */
  filename: string;
  debug?: (line: string) => void;
}

/**
 * The public Node builtins a process has loaded (process.moduleLoadList's "NativeModule <id>"
 * entries, internal ones left out), sorted: the loader's debug trace prints them at exit, so a test
 * sees a command that loads a heavy builtin it does not use (test/e2e/binary.test.ts).
 */
export function publicBuiltins(moduleLoadList: readonly string[]): string[] {
  return moduleLoadList
    .flatMap((m) => /^NativeModule ((?!internal\/)\S+)$/.exec(m)?.[1] ?? [])
    .sort();
}

export function createLoader(read: (name: string) => ScriptAsset, opts: LoaderOptions): SeaLoader {
  const scripts = new Map<string, LoadedScript>();
  const load = (name: string): unknown => {
    const done = scripts.get(name);
    if (done) return done.exports;
    const asset = read(name);
    const script = new Script(wrap(asset.source), {
      filename: scriptUrl(name),
      ...(asset.cache ? { cachedData: asset.cache } : {}),
    });
    const cache: CacheState = !asset.cache
      ? "none"
      : script.cachedDataRejected
        ? "rejected"
        : "accepted";
    const module = { exports: {} as unknown };
    const entry: LoadedScript = { name, script, cache, exports: undefined };
    scripts.set(name, entry);
    opts.debug?.(
      `sea: ${name}: ${asset.source.length} bytes of source, code cache ${cache}${asset.cacheName ? ` (${asset.cacheName})` : ""}`,
    );
    (script.runInThisContext() as Wrapper)(
      module.exports,
      opts.require,
      module,
      opts.filename,
      opts.filename.replace(/\/[^/]*$/, "") || "/",
    );
    entry.exports = module.exports;
    return module.exports;
  };
  (globalThis as Record<symbol, unknown>)[CHUNK_HOOK] = { chunk: load };
  return { load, loaded: () => [...scripts.values()] };
}
