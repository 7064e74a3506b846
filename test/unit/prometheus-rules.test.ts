// packaging/prometheus/node-join.rules.yml, the alerts shipped in the .deb: promtool accepts the
// rules, and its unit tests (node-join.rules.test.yml) see each alert fire where it should and
// stay quiet on a healthy node. Every alert has a firing test, and every metric a rule reads is
// one node-join writes (ops/metrics.ts), so a renamed metric cannot leave a rule silent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { REPO } from "../helpers/cli.js";
import { promtool } from "../helpers/promtool.js";

const DIR = join(REPO, "packaging/prometheus");
const RULES = join(DIR, "node-join.rules.yml");
const TESTS = join(DIR, "node-join.rules.test.yml");

function run(args: string[]): { code: number; output: string } {
  const r = spawnSync(promtool(), args, { cwd: DIR, encoding: "utf8" });
  return { code: r.status ?? 1, output: `${r.stdout}${r.stderr}` };
}

interface Rule {
  alert: string;
  expr: string;
}

const rules = (
  YAML.parse(readFileSync(RULES, "utf8")) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);

test("promtool check rules: the rules file is valid", () => {
  const r = run(["check", "rules", RULES]);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, new RegExp(`SUCCESS: ${rules.length} rules found`));
});

test("promtool test rules: each alert fires where it should and not on a healthy node", () => {
  const r = run(["test", "rules", TESTS]);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /SUCCESS/);
});

test("every alert has a test that expects it to fire", () => {
  const suite = YAML.parse(readFileSync(TESTS, "utf8")) as {
    tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const fired = new Set(
    suite.tests
      .flatMap((t) => t.alert_rule_test)
      .filter((a) => a.exp_alerts.length > 0)
      .map((a) => a.alertname),
  );
  assert.deepEqual(
    rules.map((r) => r.alert).filter((a) => !fired.has(a)),
    [],
  );
  assert.deepEqual(
    rules.map((r) => r.alert),
    [
      "NodeJoinCertificateExpiringSoon",
      "NodeJoinRenewalFailing",
      "NodeJoinCaExpiring",
      "NodeJoinTimerMissing",
      "NodeJoinClockNotSet",
    ],
  );
});

test("every metric a rule reads is one node-join writes", () => {
  const written = readFileSync(join(REPO, "agent/ops/metrics.ts"), "utf8");
  for (const r of rules)
    for (const [metric] of r.expr.matchAll(/node_join_[a-z_]+/g))
      assert.ok(
        written.includes(`"${metric}"`) || written.includes(`${metric}{`),
        `${r.alert}: ${metric}`,
      );
});
