// promtool (Debian's prometheus package, unpacked by scripts/deps.sh) on the metrics textfiles
// whose
// content test/unit/renewal.test.ts checks: node_exporter drops a whole textfile that does not
// parse, so a file promtool rejects or lints would silently lose every node-join metric.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sampleTextfiles } from "../helpers/metrics-samples.js";
import { checkMetrics } from "../helpers/promtool.js";

test("the metrics textfile passes promtool check metrics without lint warnings", () => {
  const { first, second } = sampleTextfiles();
  for (const text of [first, second]) {
    const r = checkMetrics(text);
    assert.equal(r.code, 0, r.output + text);
    assert.equal(r.output.trim(), "", "no lint warnings");
  }
});

test("promtool rejects a broken textfile (the check above can fail)", () => {
  assert.notEqual(checkMetrics("node_join_x{bad label} 1\n").code, 0);
});
