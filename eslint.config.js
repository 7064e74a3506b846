// Lint for the whole repository: the recommended JavaScript and TypeScript rules, no `any`, no
// import cycles, and imports that point one way through agent/'s layers:
//   cli -> engine -> config -> ca | ops -> pki -> store -> common
// (each layer may import the layers to its right, never one to its left; ca and ops not each
// other). agent/vendor/ and agent/sea/ import nothing of the agent; nothing shipped imports tests,
// and packaging/ and scripts/ never import test/. No function in agent/ is over 150 lines.
import js from "@eslint/js";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import importX from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

const LAYERS = ["common", "store", ["pki", "tpm"], ["ca", "ops"], "config", "engine", "cli"];

/** For each layer: the directories it must not import (every layer above it, and its peers). */
function layerZones() {
  const zones = [];
  LAYERS.forEach((entry, i) => {
    const here = Array.isArray(entry) ? entry : [entry];
    const above = LAYERS.slice(i + 1).flat();
    for (const layer of here) {
      const peers = here.filter((p) => p !== layer);
      zones.push({
        target: `./agent/${layer}`,
        from: [...above, ...peers, "sea"].map((d) => `./agent/${d}`),
        message: `agent/${layer} sits below ${[...above, ...peers].join(", ")}: dependencies point cli -> engine -> config -> ca|ops -> pki -> store -> common`,
      });
    }
  });
  zones.push({
    target: "./agent/vendor",
    from: "./agent",
    except: ["./vendor"],
    message: "agent/vendor/ wraps packages only",
  });
  zones.push({
    target: "./agent",
    from: ["./test", "./scripts", "./packaging"],
    message: "the agent ships: it imports no test, script or packaging code",
  });
  zones.push({
    target: ["./packaging", "./scripts"],
    from: "./test",
    message: "packaging/ and scripts/ never import test code (shared helpers live in scripts/lib/)",
  });
  return zones;
}

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", ".cache/**", "test/stepca/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.{ts,mjs,js}"],
    plugins: { "import-x": importX },
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: {
        process: "readonly",
        Buffer: "readonly",
        console: "readonly",
        URL: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
        AbortController: "readonly",
        TextEncoder: "readonly",
        TextDecoder: "readonly",
        require: "readonly",
        module: "writable",
        __dirname: "readonly",
        __filename: "readonly",
        globalThis: "readonly",
        queueMicrotask: "readonly",
        setImmediate: "readonly",
        setInterval: "readonly",
        clearInterval: "readonly",
        structuredClone: "readonly",
        fetch: "readonly",
        performance: "readonly",
        crypto: "readonly",
      },
    },
    settings: {
      // no-cycle follows imports by parsing each imported file: TypeScript needs its own parser.
      "import-x/parsers": { "@typescript-eslint/parser": [".ts"] },
      "import-x/extensions": [".ts", ".js", ".mjs"],
      "import-x/resolver-next": [createTypeScriptImportResolver({ project: "./tsconfig.json" })],
    },
    rules: {
      "import-x/no-cycle": ["error", { ignoreExternal: true }],
      "import-x/no-restricted-paths": ["error", { zones: layerZones() }],
      "@typescript-eslint/no-explicit-any": "error",
      // Prettier wraps code at 100; this holds comments to the same width. Strings are left whole:
      // a message is searched for as one piece.
      "max-len": [
        "error",
        {
          code: 100,
          ignoreStrings: true,
          ignoreTemplateLiterals: true,
          ignoreRegExpLiterals: true,
          ignoreUrls: true,
        },
      ],
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_" },
      ],
    },
  },
  {
    // Small functions in the shipped code: one that outgrows a screenful is split by what it does
    // (issue 21: a backend was one 578-line closure whose state lived in its variables).
    files: ["agent/**/*.ts"],
    rules: {
      "max-lines-per-function": ["error", { max: 150, skipBlankLines: true, skipComments: true }],
    },
  },
);
