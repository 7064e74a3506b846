// Bundles the agent:
//   dist/node-join.cjs   one CommonJS file with everything (`node dist/node-join.cjs`, the tests)
//   dist/sea/            what the single binary is made of (packaging/package.mjs):
//     main.cjs           the SEA main script: the loader (agent/sea/main.ts)
//     loader.cjs         the same loader for the training run (packaging/sea-train.mjs)
//     core.js            the agent with every dynamically imported package left out ...
// <chunk>.js ... each of which is a self-contained script of its own, loaded on first use
//     chunks.json        the chunk names
// Why the split: see agent/sea/loader.ts.
import { build } from "esbuild";
import { readFileSync, chmodSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

/** @type {{ version: string }} */
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
// The build time is the floor of the host's clock (agent/engine/clock.ts): a host running this
// binary cannot be earlier. SOURCE_DATE_EPOCH (reproducible-builds.org) fixes it for a rebuild.
const epoch = process.env.SOURCE_DATE_EPOCH;
const buildTime = new Date(epoch ? Number(epoch) * 1000 : Date.now()).toISOString();
/** @type {import("esbuild").BuildOptions} */
const common = {
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  define: {
    __NODE_JOIN_VERSION__: JSON.stringify(pkg.version),
    __NODE_JOIN_BUILD_TIME__: JSON.stringify(buildTime),
  },
  legalComments: "none",
  minify: true,
  keepNames: true,
  logLevel: "warning",
};
// External source maps (the .js stays byte-identical, no sourceMappingURL) for the SEA parts: only
// `npm run bench` reads them, to name the functions in its CPU profile; they are not packaged.
/** @type {import("esbuild").BuildOptions} */
const partMaps = { sourcemap: "external" };

// Builtins a package requires at load time but node-join never uses through it: the package's copy
// is a stand-in that loads the real module on first property access (process.getBuiltinModule).
// - commander requires node:child_process (which brings net, dgram and more: a few ms and MiB of
//   every start) only to spawn executable subcommands, which node-join does not have.
// - undici requires node:http2 for HTTP/2, which it offers only with `allowH2` (undici
//   lib/core/connect.js: ALPN "h2"), never set by agent/ca/http.ts. Loading it brings about 90
//   internal modules (readline, the REPL history, fs/promises): a fifth of loading undici, on every
//   renew. At load undici reads only `http2.constants`; the stand-in answers `{}`, what undici
//   itself falls back to where node:http2 is missing (lib/dispatcher/client-h2.js).
/** @type {{ builtin: string, importer: string, known?: string }[]} */
const LAZY_BUILTINS = [
  { builtin: "child_process", importer: "commander" },
  { builtin: "http2", importer: "undici", known: "{ constants: {} }" },
];
/** @type {import("esbuild").Plugin} */
const lazyBuiltins = {
  name: "lazy-builtins",
  setup(b) {
    for (const { builtin, importer } of LAZY_BUILTINS) {
      const pkg = new RegExp(`[\\\\/]node_modules[\\\\/]${importer}[\\\\/]`);
      b.onResolve({ filter: new RegExp(`^(node:)?${builtin}$`) }, (args) =>
        pkg.test(args.importer) ? { path: builtin, namespace: "lazy-builtin" } : undefined,
      );
    }
    b.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, (args) => {
      const known = LAZY_BUILTINS.find((l) => l.builtin === args.path)?.known ?? "{}";
      return {
        contents: `module.exports = new Proxy(${known}, { get: (t, k) => k in t ? t[k] : process.getBuiltinModule(${JSON.stringify(`node:${args.path}`)})[k] });`,
        loader: "js",
      };
    });
  },
};
common.plugins = [lazyBuiltins];

await build({ ...common, entryPoints: ["agent/cli/main.ts"], outfile: "dist/node-join.cjs" });
chmodSync("dist/node-join.cjs", 0o755);

// The single binary's parts. A package the agent imports with import() becomes a chunk: the core
// gets a stub that asks the loader for it (agent/sea/loader.ts: CHUNK_HOOK).
const SEA = "dist/sea";
rmSync(SEA, { recursive: true, force: true });
mkdirSync(SEA, { recursive: true });
/** @param {string} spec a package name, e.g. "@peculiar/x509" */
const chunkName = (spec) => spec.replace(/^@/, "").replace(/[^A-Za-z0-9.-]+/g, "-");
/** @type {Map<string, string>} name -> what the chunk's entry requires */
const chunks = new Map();
/** @type {import("esbuild").Plugin} */
const chunkStubs = {
  name: "sea-chunks",
  setup(b) {
    // A package, or one of agent/vendor/ (a package's parts, loaded without the rest of it).
    b.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind !== "dynamic-import" || args.path.startsWith("node:")) return undefined;
      const vendor = /(?:^|\/)vendor\/([\w-]+)\.js$/.exec(args.path);
      if (!vendor && /^[./]/.test(args.path)) return undefined;
      const name = vendor ? vendor[1] : chunkName(args.path);
      chunks.set(
        name,
        vendor ? resolve(args.resolveDir, args.path.replace(/\.js$/, ".ts")) : args.path,
      );
      return { path: name, namespace: "sea-chunk" };
    });
    b.onLoad({ filter: /.*/, namespace: "sea-chunk" }, (args) => ({
      contents: `module.exports = globalThis[Symbol.for("node-join.sea")].chunk(${JSON.stringify(args.path)});`,
      loader: "js",
    }));
  },
};
await build({
  ...common,
  entryPoints: ["agent/cli/main.ts"],
  outfile: `${SEA}/core.js`,
  plugins: [chunkStubs, lazyBuiltins],
  ...partMaps,
});
// The loader wraps each part in a function, where agent/cli/main.ts's "#!" line would be a syntax
// error;
// made a comment, so that lines and columns still match the source map.
writeFileSync(`${SEA}/core.js`, readFileSync(`${SEA}/core.js`, "utf8").replace(/^#!/, "//"));
chmodSync(`${SEA}/core.js`, 0o644);
for (const [name, spec] of chunks) {
  await build({
    ...common,
    stdin: {
      contents: `module.exports = require(${JSON.stringify(spec)});`,
      resolveDir: process.cwd(),
      loader: "js",
      sourcefile: `${name}-chunk.js`,
    },
    outfile: `${SEA}/${name}.js`,
    ...partMaps,
  });
}
await build({ ...common, entryPoints: ["agent/sea/main.ts"], outfile: `${SEA}/main.cjs` });
await build({ ...common, entryPoints: ["agent/sea/loader.ts"], outfile: `${SEA}/loader.cjs` });
writeFileSync(`${SEA}/chunks.json`, `${JSON.stringify([...chunks.keys()].sort())}\n`);
