// dist/SHA256SUMS lists the .debs too: deb.mjs replaces earlier .deb lines and keeps package.mjs's
// (whose stamp hashes only its own lines, so adding the .debs does not make the binaries stale).
import { test } from "node:test";
import assert from "node:assert/strict";
import { withDebs, withoutDebs } from "../../packaging/sums.mjs";

const BINARIES = `${"a".repeat(64)}  node-join-linux-x64\n${"b".repeat(64)}  node-join-linux-x64.xz\n`;

test("withDebs adds the .debs' lines after package.mjs's, and replaces earlier ones", () => {
  const once = withDebs(BINARIES, [["node-join_0.1.0_amd64.deb", "c".repeat(64)]]);
  assert.equal(once, `${BINARIES}${"c".repeat(64)}  node-join_0.1.0_amd64.deb\n`);
  const twice = withDebs(once, [
    ["node-join_0.1.0_amd64.deb", "d".repeat(64)],
    ["node-join_0.1.0_arm64.deb", "e".repeat(64)],
  ]);
  assert.equal(
    twice,
    `${BINARIES}${"d".repeat(64)}  node-join_0.1.0_amd64.deb\n${"e".repeat(64)}  node-join_0.1.0_arm64.deb\n`,
  );
  assert.equal(withoutDebs(twice), BINARIES);
});
