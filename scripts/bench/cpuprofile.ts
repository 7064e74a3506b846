// Summarises V8 .cpuprofile files of node-join's JavaScript: either the esbuild bundle
// (node --cpu-prof dist/node-join.cjs ...) or the single binary's parts (dist/sea/core.js and its
// chunks, run through the binary's loader with their code caches; script URLs "node-join:<part>").
// Where the time goes by category (V8 compile/native, GC, Node internals, our code, idle), the
// package each sample's function comes from, the cost of loading each package (samples with its
// module
// factory on the stack, including what it requires), the agent's own functions (inclusive), and the
// top
// functions by self time.
//
// Positions are mapped to sources with each script's source map when one is given (works for a
// minified
// bundle: an esbuild CommonJS module factory is the anonymous function mapped to line 0, column 0
// of its
// file); without one, with esbuild's `// node_modules/<pkg>/...` region comments of an unminified
// bundle
// (module factories are then named after the module path).
//
// Standalone: node --import tsx scripts/bench/cpuprofile.ts <bundle.cjs> [--map <bundle.cjs.map>]
// <a.cpuprofile>...
import { readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number; // 0-based
  columnNumber: number; // 0-based
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Share {
  name: string;
  ms: number;
}
export interface ProfileSummary {
  profiles: number;
  /** How positions were attributed to packages. */
  attribution: string;
  /** Mean profiled time per run (from profiler start, i.e. after Node's own bootstrap). */
  totalMs: number;
  categories: Share[];
  /** Self time of functions in the bundle, by the package they come from. */
  byPackage: Share[];
  /** Samples with the package's module factory on the stack (what it requires included): an upper
   * bound on what loading it lazily would save. Plus compiling the bundle and its top-level code.
   * */
  loadByPackage: Share[];
  /** Inclusive time of the agent's own functions. */
  agentFunctions: Share[];
  /** Loading: compiling the bundle, module factories, top-level code before main() runs. */
  moduleLoadMs: number;
  topFunctions: Share[];
}

/** Where a bundle function comes from. */
interface Loc {
  pkg: string;
  /** source file:line, when known */
  where: string;
  /** the function is the module factory of pkg (its top-level code) */
  factory: boolean;
  /** the function's name in the sources (a minified bundle's names are not) */
  name?: string;
}
type Locator = (cf: CallFrame) => Loc;

const HELPERS = "(bundle runtime helpers)";

/** Names esbuild's runtime helpers (minified, unmapped) from their code. */
function helperName(bundleLines: string[], cf: CallFrame): string | undefined {
  const code = (bundleLines[cf.lineNumber] ?? "").slice(cf.columnNumber, cf.columnNumber + 80);
  if (/^\(\)=>\{try\{return \w+\|\|\w+\(\(\w+=\{exports:\{\}\}\)/.test(code))
    return "__require (self time: lazy compile of the module factory it calls)";
  if (/^\(\)=>\{if\(\w+\)throw \w+\[0\];try\{return/.test(code))
    return "__esm init (self time: lazy compile of the module it runs)";
  if (/^\(\w+,\w+\)=>\w+\(\w+,"name",\{value:/.test(code)) return "__name (keepNames)";
  if (/^\(\w+,\w+,\w+,\w+\)=>\{if\(\w+&&typeof \w+=="object"/.test(code))
    return "__copyProps (__toESM / __toCommonJS)";
  if (/^\w+=>\w+\(\w+\(\{\},"__esModule"/.test(code)) return "__toCommonJS";
  return undefined;
}

function pkgOfPath(path: string): string {
  const i = path.lastIndexOf("node_modules/");
  if (i >= 0) {
    const rest = path.slice(i + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const a = /(?:^|\/)(agent)\//.exec(path);
  return a ? "agent" : path.replace(/^.*\//, "");
}

function shortPath(path: string): string {
  const i = path.lastIndexOf("node_modules/");
  if (i >= 0) return path.slice(i + "node_modules/".length);
  const a = path.lastIndexOf("agent/");
  return a >= 0 ? path.slice(a) : path;
}

function mapLocator(mapFile: string, bundleText: string): Locator {
  const sm = new SourceMap(JSON.parse(readFileSync(mapFile, "utf8")));
  const lines = bundleText.split("\n");
  const cache = new Map<string, Loc>();
  return (cf) => {
    const key = `${cf.lineNumber}:${cf.columnNumber}:${cf.functionName}`;
    let loc = cache.get(key);
    if (loc) return loc;
    const e = sm.findEntry(cf.lineNumber, cf.columnNumber) as {
      originalSource?: string;
      originalLine?: number;
      originalColumn?: number;
      name?: string;
    };
    if (!e.originalSource) {
      const helper = helperName(lines, cf);
      loc = {
        pkg: HELPERS,
        where: `bundle ${cf.lineNumber + 1}:${cf.columnNumber + 1}`,
        factory: false,
        ...(helper ? { name: helper } : {}),
      };
    } else {
      const src = e.originalSource.startsWith("file:")
        ? fileURLToPath(e.originalSource)
        : e.originalSource;
      loc = {
        pkg: pkgOfPath(src),
        where: `${shortPath(src)}:${(e.originalLine ?? 0) + 1}`,
        factory: cf.functionName === "" && e.originalLine === 0 && e.originalColumn === 0,
        ...(e.name && cf.functionName ? { name: e.name } : {}),
      };
    }
    cache.set(key, loc);
    return loc;
  };
}

function regionLocator(bundleText: string): Locator {
  const starts: { line: number; pkg: string; file: string }[] = [];
  bundleText.split("\n").forEach((l, i) => {
    const m = /^\/\/ ((?:node_modules\/(?:@[^/]+\/)?[^/]+|agent)\/\S+)$/.exec(l);
    if (m) starts.push({ line: i, pkg: pkgOfPath(m[1]!), file: shortPath(m[1]!) });
  });
  return (cf) => {
    const factoryPkg = /^((?:node_modules\/(?:@[^/]+\/)?[^/]+|agent)\/\S+)$/.exec(cf.functionName);
    if (factoryPkg)
      return { pkg: pkgOfPath(factoryPkg[1]!), where: shortPath(factoryPkg[1]!), factory: true };
    let lo = 0;
    let hi = starts.length - 1;
    let found: { pkg: string; file: string } | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid]!.line <= cf.lineNumber) {
        found = starts[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found
      ? {
          pkg: found.pkg,
          where: `${found.file} (bundle line ${cf.lineNumber + 1})`,
          factory: false,
        }
      : { pkg: HELPERS, where: `bundle ${cf.lineNumber + 1}`, factory: false };
  };
}

function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

function sorted(map: Map<string, number>, runs: number): Share[] {
  return [...map.entries()]
    .map(([name, us]) => ({ name, ms: us / 1000 / runs }))
    .sort((a, b) => b.ms - a.ms);
}

/** A script of ours in the profiles. */
export interface ProfiledScript {
  file: string;
  map?: string;
  /** The script's URL in the profile (default: any URL ending in the file's name). */
  url?: string;
  /** Lines of wrapper before the file's first line (agent/sea/loader.ts: WRAPPER_LINES). */
  lineOffset?: number;
}

interface Known {
  locate: Locator;
  offset: number;
}

export function summarize(
  scripts: ProfiledScript[],
  profileFiles: string[],
  label: string,
): ProfileSummary {
  const known = scripts.map((sc) => {
    const text = readFileSync(sc.file, "utf8");
    const name = basename(sc.file);
    const offset = sc.lineOffset ?? 0;
    const inner = sc.map ? mapLocator(sc.map, text) : regionLocator(text);
    return {
      match: (url: string) => (sc.url ? url === sc.url : url.endsWith(name)),
      known: {
        offset,
        locate: (cf: CallFrame) => inner({ ...cf, lineNumber: cf.lineNumber - offset }),
      } as Known,
    };
  });
  const ours = (cf: CallFrame): Known | undefined => known.find((k) => k.match(cf.url))?.known;
  const categories = new Map<string, number>();
  const byPackage = new Map<string, number>();
  const loadByPackage = new Map<string, number>();
  const functions = new Map<string, number>();
  const agentFunctions = new Map<string, number>();
  let total = 0;
  let moduleLoad = 0;
  const inBundle = (cf: CallFrame) => ours(cf) !== undefined;
  // The script's own top level: esbuild's at line 0, column 0, or the loader's wrapper function
  // above it.
  const isTopLevel = (cf: CallFrame) => {
    const line = cf.lineNumber - (ours(cf)?.offset ?? 0);
    return cf.functionName === "" && (line < 0 || (line === 0 && cf.columnNumber === 0));
  };
  const locate = (cf: CallFrame): Loc => ours(cf)!.locate(cf);
  for (const file of profileFiles) {
    const prof = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
    const byId = new Map<number, ProfileNode>(prof.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const stackInfo = new Map<number, { loading: Set<string>; agent: Set<string> }>();
    const infoOf = (id: number) => {
      let info = stackInfo.get(id);
      if (info) return info;
      info = { loading: new Set<string>(), agent: new Set<string>() };
      let topLevel = false;
      for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
        const cf = byId.get(cur)!.callFrame;
        if (cf.functionName === "wrapSafe" && cf.url.startsWith("node:internal/modules/"))
          info.loading.add("(V8 compiling the bundle: wrapSafe)");
        if (cf.functionName === "Script" && cf.url === "node:vm")
          info.loading.add("(V8 reading code caches or compiling: vm.Script)");
        if (!inBundle(cf)) continue;
        if (isTopLevel(cf)) {
          topLevel = true;
          continue;
        }
        const loc = locate(cf);
        if (loc.factory) info.loading.add(loc.pkg);
        else if (loc.pkg === "agent")
          info.agent.add(`${loc.name ?? (cf.functionName || "(anonymous)")} [${loc.where}]`);
      }
      // The bundle's top-level code (unwrapped ESM modules: agent/, hoisted dependencies) until
      // main() runs.
      if (topLevel && info.agent.size === 0)
        info.loading.add("(bundle top-level code before main, incl. the packages below)");
      stackInfo.set(id, info);
      return info;
    };
    prof.samples.forEach((id, i) => {
      const us = prof.timeDeltas[i] ?? 0;
      total += us;
      const cf = byId.get(id)!.callFrame;
      let category: string;
      if (cf.functionName === "(garbage collector)") category = "GC";
      else if (cf.functionName === "(program)")
        category = "(program): V8 parse/compile, native, not in JS";
      else if (cf.functionName === "(idle)")
        category = "idle (waiting on I/O, threadpool work such as key generation)";
      else if (cf.functionName === "(root)") category = "(root)";
      else if (inBundle(cf)) category = `our JS (${label})`;
      else if (cf.url.startsWith("node:") || cf.url === "")
        category = "Node internals (node:*, builtins)";
      else if (cf.url.startsWith("wasm://")) category = "WebAssembly (undici's llhttp)";
      else category = `other: ${cf.url}`;
      add(categories, category, us);
      let where = cf.url || "native";
      let name = cf.functionName || "(anonymous)";
      if (inBundle(cf)) {
        const loc: Loc = isTopLevel(cf)
          ? { pkg: "(bundle top-level code)", where: "bundle top level", factory: false }
          : locate(cf);
        add(byPackage, loc.factory ? `${loc.pkg} (module top-level code)` : loc.pkg, us);
        where = loc.factory ? `module factory ${loc.where}` : loc.where;
        name = loc.name ?? name;
      }
      const info = infoOf(id);
      if (info.loading.size) moduleLoad += us;
      for (const pkg of info.loading) add(loadByPackage, pkg, us);
      for (const fn of info.agent) add(agentFunctions, fn, us);
      add(functions, `${name} [${where}]`, us);
    });
  }
  const runs = profileFiles.length;
  return {
    profiles: runs,
    attribution: scripts.every((sc) => sc.map) ? "source maps" : "esbuild region comments",
    totalMs: total / 1000 / runs,
    categories: sorted(categories, runs),
    byPackage: sorted(byPackage, runs),
    loadByPackage: sorted(loadByPackage, runs),
    agentFunctions: sorted(agentFunctions, runs),
    moduleLoadMs: moduleLoad / 1000 / runs,
    topFunctions: sorted(functions, runs),
  };
}

export function formatSummary(s: ProfileSummary, top = 10): string[] {
  const pct = (ms: number) => `${((100 * ms) / s.totalMs).toFixed(0)}%`;
  const list = (title: string, xs: Share[]) => [
    title,
    ...xs
      .slice(0, top)
      .map((x) => `  ${x.ms.toFixed(1).padStart(7)} ms ${pct(x.ms).padStart(4)}  ${x.name}`),
  ];
  return [
    `profiled time ${s.totalMs.toFixed(1)} ms per run (mean of ${s.profiles}; starts after Node's bootstrap; positions via ${s.attribution})`,
    `loading (compiling the bundle, module factories, top-level code before main): ${s.moduleLoadMs.toFixed(1)} ms ${pct(s.moduleLoadMs)}`,
    ...list("by category:", s.categories),
    ...list(
      "load cost by package, inclusive of what it requires (its module factory on the stack):",
      s.loadByPackage,
    ),
    ...list("agent functions, inclusive (the command's own work):", s.agentFunctions),
    ...list("self time in bundle code, by package:", s.byPackage),
    ...list(
      "top functions by self time (wrapSafe / Script: V8 compiling, or reading a code cache):",
      s.topFunctions,
    ),
  ];
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const mi = args.indexOf("--map");
  const map = mi >= 0 ? args.splice(mi, 2)[1] : undefined;
  const [bundle, ...files] = args;
  if (!bundle || files.length === 0) {
    console.error(
      "usage: node --import tsx scripts/bench/cpuprofile.ts <bundle.cjs> [--map <bundle.cjs.map>] <file.cpuprofile>...",
    );
    process.exit(2);
  }
  console.log(
    formatSummary(summarize([{ file: bundle, ...(map ? { map } : {}) }], files, bundle), 15).join(
      "\n",
    ),
  );
}
