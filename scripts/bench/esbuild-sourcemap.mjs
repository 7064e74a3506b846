// Preload for the project's own build script, so the bench can map CPU-profile positions of the
// (possibly minified) bundle back to sources without maintaining a copy of the build options:
//
//   BENCH_BUILD_OUT=/tmp/x/node-join.cjs node --import ./scripts/bench/esbuild-sourcemap.mjs scripts/build.mjs
//
// scripts/build.mjs's `import { build } from "esbuild"` is redirected to esbuild's real build() with
// the same options plus `sourcemap: "external"` and the output moved to $BENCH_BUILD_OUT (dist/ is not
// written). An external source map leaves the JavaScript byte-identical; scripts/bench/run.ts checks
// that against dist/node-join.cjs before using the map.
import { createRequire, register } from "node:module";

const out = process.env.BENCH_BUILD_OUT;
if (!out) throw new Error("esbuild-sourcemap.mjs: set BENCH_BUILD_OUT");
const real = createRequire(new URL("../../package.json", import.meta.url))("esbuild");

globalThis.__njBenchEsbuild = {
  ...real,
  build: async (opts) => {
    if (!opts.outfile || opts.outdir) throw new Error("esbuild-sourcemap.mjs: build options without a single outfile");
    return real.build({ ...opts, outfile: out, sourcemap: "external", write: true });
  },
};

const shim = [
  "const e = globalThis.__njBenchEsbuild;",
  "export default e;",
  "export const { build, context, transform, buildSync, transformSync, formatMessages, analyzeMetafile, version } = e;",
].join("\n");
const shimUrl = `data:text/javascript,${encodeURIComponent(shim)}`;
const hooks = `export async function resolve(specifier, context, next) {
  if (specifier === "esbuild" && (context.parentURL ?? "").endsWith("/scripts/build.mjs")) {
    return { url: ${JSON.stringify(shimUrl)}, shortCircuit: true };
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
