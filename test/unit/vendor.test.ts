// The deep imports of agent/vendor/ still exist: each package-internal module the agent loads
// resolves, comes from the exact version package.json pins, and exports what agent/vendor/ uses;
// then agent/vendor/undici.ts and agent/vendor/systeminformation.ts themselves load and work.
// A dependency upgrade that moves, renames or hides (an "exports" map) one of these modules fails
// here, naming the module, before the build or an end-to-end join does. What each deep import saves
// and what to re-check: packaging/README.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** The repository root: the nearest directory above this file whose package.json is node-join's. */
function repoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (
      existsSync(file) &&
      (JSON.parse(readFileSync(file, "utf8")) as { name?: string }).name === "node-join"
    )
      return dir;
    if (dirname(dir) === dir)
      throw new Error(`no node-join package.json above ${fileURLToPath(import.meta.url)}`);
  }
}

const REPO = repoRoot();
const VENDOR = join(REPO, "agent", "vendor");
const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
};
// Resolve as agent/vendor/ does: from its own directory.
const requireFromVendor = createRequire(join(VENDOR, "undici.ts"));

type Check = (exports: unknown, spec: string) => void;

const isClass = (v: unknown): boolean =>
  typeof v === "function" && /^class\b/.test(Function.prototype.toString.call(v));

/**
 * Every module agent/vendor/ deep-imports, the file that imports it, and what that file uses of it.
 */
const DEEP_IMPORTS: { spec: string; pkg: string; by: string; uses: string; check: Check }[] = [
  {
    spec: "undici/lib/dispatcher/agent.js",
    pkg: "undici",
    by: "agent/vendor/undici.ts",
    uses: "the Agent class (module.exports)",
    check: (m, spec) =>
      assert.ok(
        isClass(m),
        `${spec}: module.exports is no longer a class (${typeof m}); agent/vendor/undici.ts exports it as Agent`,
      ),
  },
  {
    spec: "undici/lib/dispatcher/dispatcher.js",
    pkg: "undici",
    by: "agent/vendor/undici.ts",
    uses: "the Dispatcher class (module.exports), Agent's base, whose prototype gets the request API",
    check: (m, spec) => {
      assert.ok(
        isClass(m),
        `${spec}: module.exports is no longer a class (${typeof m}); agent/vendor/undici.ts assigns the request API to its prototype`,
      );
      const agent = requireFromVendor("undici/lib/dispatcher/agent.js") as { prototype: object };
      assert.ok(
        agent.prototype instanceof (m as new () => object),
        `${spec}: undici/lib/dispatcher/agent.js's Agent no longer extends this Dispatcher, so agent/vendor/undici.ts's request API would not reach it`,
      );
    },
  },
  {
    spec: "undici/lib/core/connect.js",
    pkg: "undici",
    by: "agent/vendor/undici.ts",
    uses: "buildConnector (module.exports), the TLS connector agent/ca/tunnel.ts runs over a CONNECT tunnel",
    check: (m, spec) => {
      assert.equal(
        typeof m,
        "function",
        `${spec}: module.exports is no longer a function (${typeof m}); agent/ca/http.ts builds the TLS connector of a proxy tunnel with it`,
      );
      const connector = (m as (o: object) => unknown)({});
      assert.equal(
        typeof connector,
        "function",
        `${spec}: buildConnector no longer returns a connector function; agent/ca/tunnel.ts calls it with the tunnel's socket (httpSocket)`,
      );
      assert.match(
        Function.prototype.toString.call(connector),
        /httpSocket/,
        `${spec}: the connector no longer takes httpSocket, the socket agent/ca/tunnel.ts hands it`,
      );
    },
  },
  {
    spec: "undici/lib/api/index.js",
    pkg: "undici",
    by: "agent/vendor/undici.ts",
    uses: "the request API (request, which agent/ca/http.ts calls)",
    check: (m, spec) => {
      assert.equal(
        typeof m,
        "object",
        `${spec}: module.exports is no longer an object (${typeof m}); agent/vendor/undici.ts assigns it to Dispatcher.prototype`,
      );
      assert.equal(
        typeof (m as { request?: unknown }).request,
        "function",
        `${spec}: no request function any more; agent/ca/http.ts calls Agent#request`,
      );
    },
  },
  {
    spec: "systeminformation/lib/network.js",
    pkg: "systeminformation",
    by: "agent/vendor/systeminformation.ts",
    uses: "a function networkInterfaces",
    check: (m, spec) =>
      assert.equal(
        typeof (m as { networkInterfaces?: unknown }).networkInterfaces,
        "function",
        `${spec}: no function networkInterfaces any more; agent/vendor/systeminformation.ts re-exports it for agent/ops/discover.ts`,
      ),
  },
];

const recheck = (name: string) =>
  `re-check agent/vendor/ and packaging/README.md ("Deep imports into undici and systeminformation") against ${name}'s new layout`;

function installedVersion(name: string): string {
  const file = join(REPO, "node_modules", name, "package.json");
  assert.ok(existsSync(file), `${name} is not installed (${file} missing): run npm ci`);
  return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
}

test("this test checks every deep import in agent/vendor/", () => {
  // A module inside a package: more than the package name ("pkg" or "@scope/pkg") after from.
  const deep = (spec: string) => spec.split("/").length > (spec.startsWith("@") ? 2 : 1);
  const found = new Set<string>();
  for (const f of readdirSync(VENDOR).filter((n) => n.endsWith(".ts") && !n.endsWith(".d.ts"))) {
    for (const m of readFileSync(join(VENDOR, f), "utf8").matchAll(/\bfrom\s+"([^".][^"]*)"/g)) {
      if (!m[1]!.startsWith("node:") && deep(m[1]!)) found.add(`${m[1]} (agent/vendor/${f})`);
    }
  }
  const checked = new Set(DEEP_IMPORTS.map((d) => `${d.spec} (${d.by})`));
  assert.deepEqual(
    [...found].sort(),
    [...checked].sort(),
    "agent/vendor/ deep-imports modules this test does not check, or no longer imports one it checks: update DEEP_IMPORTS here",
  );
});

for (const d of DEEP_IMPORTS) {
  test(`${d.spec}: resolves, comes from the pinned ${d.pkg}, exports ${d.uses}`, () => {
    const pin = pkg.dependencies[d.pkg];
    assert.ok(
      pin !== undefined,
      `${d.spec}: ${d.pkg} is not in package.json's dependencies, but ${d.by} deep-imports it`,
    );
    assert.match(
      pin,
      /^\d+\.\d+\.\d+$/,
      `${d.spec}: package.json must pin ${d.pkg} exactly (it has "${pin}"): ${d.by} deep-imports a module inside it`,
    );
    const installed = installedVersion(d.pkg);
    assert.equal(
      installed,
      pin,
      `${d.pkg} moved: ${installed} is installed but package.json pins ${pin}. ${d.by} deep-imports ${d.spec}; ${recheck(d.pkg)}, then update the pin`,
    );
    let file: string;
    try {
      file = requireFromVendor.resolve(d.spec);
    } catch (err) {
      assert.fail(
        `${d.spec} no longer resolves from agent/vendor/ (${(err as Error).message.split("\n")[0]}); ${d.by} imports it: ${recheck(d.pkg)}`,
      );
    }
    // require.resolve answers the real path: compare with the package's real directory, so a
    // node_modules that is a link (a shared checkout's) is still this repository's.
    assert.ok(
      file.startsWith(realpathSync(join(REPO, "node_modules", d.pkg)) + "/"),
      `${d.spec} resolves to ${file}, outside node_modules/${d.pkg}`,
    );
    let exports: unknown;
    try {
      exports = requireFromVendor(d.spec);
    } catch (err) {
      assert.fail(
        `${d.spec} (${file}) fails to load: ${(err as Error).message.split("\n")[0]}; ${d.by} imports it: ${recheck(d.pkg)}`,
      );
    }
    d.check(exports, d.spec);
  });
}

test("agent/vendor/undici.ts loads and its Agent has the request API (undici/lib/dispatcher/agent.js, undici/lib/api/index.js)", async () => {
  const mod = (await import(pathToFileURL(join(VENDOR, "undici.ts")).href)) as { Agent?: unknown };
  assert.ok(
    isClass(mod.Agent),
    "agent/vendor/undici.ts: Agent (undici/lib/dispatcher/agent.js) is not a class",
  );
  const agent = new (mod.Agent as new () => { request?: unknown; close(): Promise<void> })();
  try {
    assert.equal(
      typeof agent.request,
      "function",
      "agent/vendor/undici.ts: new Agent().request is not a function: the request API of undici/lib/api/index.js no longer reaches Agent through undici/lib/dispatcher/dispatcher.js's prototype",
    );
  } finally {
    await agent.close();
  }
});

test("agent/vendor/systeminformation.ts loads and exports networkInterfaces (systeminformation/lib/network.js)", async () => {
  const mod = (await import(pathToFileURL(join(VENDOR, "systeminformation.ts")).href)) as {
    networkInterfaces?: unknown;
  };
  assert.equal(
    typeof mod.networkInterfaces,
    "function",
    "agent/vendor/systeminformation.ts: networkInterfaces (systeminformation/lib/network.js) is not a function",
  );
});
