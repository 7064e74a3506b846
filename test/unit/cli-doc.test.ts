// docs/cli.md is generated from the program (scripts/lib/cli-markdown.ts): it fails here when a
// flag, command or setting changed and `npm run docs:cli` was not run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { renderCliMarkdown } from "../../scripts/lib/cli-markdown.js";
import { programReference } from "../helpers/in-process-cli.js";

test("docs/cli.md is what npm run docs:cli generates", () => {
  const file = readFileSync(new URL("../../docs/cli.md", import.meta.url), "utf8");
  const generated = renderCliMarkdown(programReference());
  assert.ok(file === generated, "docs/cli.md is out of date: run npm run docs:cli");
});

test("docs/cli.md names every command, option and setting", () => {
  const file = readFileSync(new URL("../../docs/cli.md", import.meta.url), "utf8");
  for (const c of ["join", "renew", "leave", "timer install", "trust add", "status", "man"])
    assert.ok(file.includes(`### \`node-join ${c} `), c);
  assert.match(file, /^\| `--etcd-ca-url <url>` \| URL of the CA server \(repeatable\) \|$/m);
  assert.match(
    file,
    /^\| `cas\.etcd\.url` \| `--etcd-ca-url <url>` \(repeatable\) \| `NODE_JOIN_ETCD_CA_URL` \|/m,
  );
});
