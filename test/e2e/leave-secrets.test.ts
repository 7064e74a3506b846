// leave and a secret file another user owns (issue 23, item 15): the config names it, but leave
// removes only a secret the user running it owns (root, on a node). Making a file another user's
// takes root, so this case lives in the end-to-end tier, which runs as root.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, existsSync } from "node:fs";
import { cfsslKeyNode } from "../helpers/joined.js";

test("leave keeps a secret file the config names when another user owns it, and says why", async () => {
  assert.equal(process.geteuid?.(), 0, "the end-to-end tier runs as root");
  const foreign = await cfsslKeyNode();
  assert.equal((await foreign.join()).code, 0);
  chownSync(foreign.keyFile, 65534, 65534);
  const stays = await foreign.run("leave", "--yes");
  assert.equal(stays.code, 0, stays.stderr);
  assert.ok(
    stays.stdout.includes(
      `\n  kept ${foreign.keyFile} (kubernetes CA auth key file: a secret, but owned by uid 65534, not root: left for the operator)\n`,
    ),
    stays.stdout,
  );
  assert.equal(existsSync(foreign.keyFile), true);
});
