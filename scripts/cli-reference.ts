// Writes docs/cli.md from the program (scripts/lib/cli-markdown.ts); `--check` exits 1 when the
// file differs, without writing it.
import { readFileSync, writeFileSync } from "node:fs";
import { buildProgram } from "../agent/cli/main.js";
import { describeProgram } from "../agent/cli/reference.js";
import { renderCliMarkdown } from "./lib/cli-markdown.js";

const target = new URL("../docs/cli.md", import.meta.url);
const program = buildProgram(
  { stdout: () => undefined, stderr: () => undefined, env: {} },
  () => {},
);
const text = renderCliMarkdown(describeProgram(program));
if (process.argv.includes("--check")) {
  const current = readFileSync(target, "utf8");
  if (current !== text) {
    console.error("docs/cli.md is out of date: run npm run docs:cli");
    process.exit(1);
  }
} else {
  writeFileSync(target, text);
}
