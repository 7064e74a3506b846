// Keeps the README honest: every flag, config key and exit code the code knows is documented.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { envName, OPTIONS } from "../../agent/config/options.js";
import { ExitCode } from "../../agent/common/errors.js";
import { EXIT_CODES_HELP } from "../../agent/cli/context.js";

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

test("README documents every config key, flag and environment variable", () => {
  for (const o of OPTIONS) {
    assert.ok(readme.includes(`\`${o.key}\``), `config key ${o.key}`);
    if (o.flag) {
      assert.ok(readme.includes(`--${o.flag}`), `flag --${o.flag}`);
      assert.ok(readme.includes(envName(o.flag)), `env ${envName(o.flag)}`);
    }
  }
});

test("README and --help list the same exit codes as the code", () => {
  for (const code of Object.values(ExitCode)) {
    assert.match(readme, new RegExp(`^\\| ${code} \\|`, "m"), `README exit code ${code}`);
    assert.match(EXIT_CODES_HELP, new RegExp(`^  ${code}  `, "m"), `--help exit code ${code}`);
  }
});
