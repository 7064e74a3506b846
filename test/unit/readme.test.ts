// Keeps the documentation honest: every flag, config key and exit code the code knows is
// documented (in README.md or a guide in docs/), the README stays the short path, and every link
// between the documents leads somewhere.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { envName, OPTIONS } from "../../agent/config/options.js";
import { ExitCode } from "../../agent/common/errors.js";
import { EXIT_CODES_HELP } from "../../agent/cli/context.js";
import { REPO } from "../helpers/cli.js";
import { allDocsText, readDoc, recipeSources, userDocs } from "../helpers/docs.js";

const docs = allDocsText();
const readme = readDoc("README.md").text;

test("README or docs/ document every config key, flag and environment variable", () => {
  for (const o of OPTIONS) {
    assert.ok(docs.includes(`\`${o.key}\``), `config key ${o.key}`);
    if (o.flag) {
      assert.ok(docs.includes(`--${o.flag}`), `flag --${o.flag}`);
      assert.ok(docs.includes(envName(o.flag)), `env ${envName(o.flag)}`);
    }
  }
});

test("docs/troubleshooting.md and --help list the same exit codes as the code", () => {
  const troubleshooting = readDoc("docs/troubleshooting.md").text;
  for (const code of Object.values(ExitCode)) {
    assert.match(troubleshooting, new RegExp(`^\\| ${code} \\|`, "m"), `exit code ${code} row`);
    if (code !== 0)
      assert.match(
        troubleshooting,
        new RegExp(`^\\*\\*${code}, `, "m"),
        `exit code ${code}: causes and fixes`,
      );
    assert.match(EXIT_CODES_HELP, new RegExp(`^  ${code}  `, "m"), `--help exit code ${code}`);
  }
  assert.ok(readme.includes("](docs/troubleshooting.md)"), "README links the exit codes");
});

test("the README leads: at most 300 lines, the first hour's sections, then a table of guides", () => {
  const lines = readme.split("\n").length;
  assert.ok(lines <= 300, `README.md has ${lines} lines`);
  const headings = [...readme.matchAll(/^## (.*)$/gm)].map((m) => m[1]);
  for (const h of [
    "Install",
    "Try it in five minutes",
    "Joining a worker",
    "Checking it: `node-join status`",
    "The renewal timer",
    "Guides",
  ])
    assert.ok(headings.includes(h), `README section "${h}" (has: ${headings.join(" | ")})`);
  assert.match(readme, /npm run demo/);
  assert.match(readme, /--ca-type step-ca/, "the worker section joins against step-ca too");
  const guides = readme.slice(readme.indexOf("## Guides"));
  for (const d of userDocs().filter((d) => d.path.startsWith("docs/")))
    assert.ok(guides.includes(`](${d.path})`), `the guides table lists ${d.path}`);
  assert.ok(guides.includes("](docs/clock.md)"), "the guides table keeps the clock guide's row");
});

/** GitHub's heading anchor: lower case, punctuation but "-" and "_" dropped, spaces as "-". */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_ -]/gu, "")
    .replace(/ /g, "-");
}

function anchors(text: string): Set<string> {
  const outside = text.replace(/^```[^]*?^```/gm, "");
  return new Set([...outside.matchAll(/^#{1,6} (.*)$/gm)].map((m) => anchor(m[1]!)));
}

// Written in parallel with this test by another change; its row in the guides table comes first.
const PENDING = new Set(["docs/clock.md"]);

test("every relative link in README.md and docs/ leads to a file, and its #anchor to a heading", () => {
  const broken: string[] = [];
  for (const d of userDocs()) {
    const dir = d.path.includes("/") ? d.path.slice(0, d.path.lastIndexOf("/")) : "";
    for (const m of d.text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1]!;
      if (/^[a-z]+:/.test(link)) continue;
      const [file, hash] = link.split("#") as [string, string | undefined];
      const target = file === "" ? d.path : join(dir, file);
      if (PENDING.has(target)) continue;
      if (!existsSync(join(REPO, target))) {
        broken.push(`${d.path}: ${link} (no ${target})`);
        continue;
      }
      if (hash !== undefined && target.endsWith(".md")) {
        const text = target === d.path ? d.text : readDoc(target).text;
        if (!anchors(text).has(hash)) broken.push(`${d.path}: ${link} (no heading #${hash})`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test("every recipe that writes a file under /etc/node-join creates the directory (install -D)", () => {
  const bad = recipeSources().flatMap((d) =>
    d.text
      .split("\n")
      .filter((l) => /\binstall\b[^|`]*\/dev\/stdin/.test(l) && !/\binstall -D\b/.test(l))
      .map((l) => `${d.path}: ${l.trim()}`),
  );
  assert.deepEqual(bad, []);
  assert.match(readme, /^install -D -m 0600 \/dev\/stdin \/etc\/node-join\/ca-auth\.key/m);
});
