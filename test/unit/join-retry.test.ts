// The join retry's own decisions (ops/join-retry.ts); the unit under a real systemd is
// test/e2e/join-retry-systemd.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { clearJoinPending, inJoinUnit, recordJoinFailure } from "../../agent/ops/join-retry.js";
import type { TimerEnv } from "../../agent/ops/timer.js";
import { CaUnreachableError } from "../../agent/common/errors.js";
import { layout } from "../../agent/store/layout.js";
import { systemdRoot } from "../helpers/fs.js";

test("inJoinUnit: the process's cgroup is node-join-join.service's (cgroup v2 and v1), not another unit's", () => {
  assert.equal(
    inJoinUnit(() => "0::/system.slice/node-join-join.service\n"),
    true,
  );
  assert.equal(
    inJoinUnit(() => "12:pids:/\n1:name=systemd:/system.slice/node-join-join.service\n0::/\n"),
    true,
  );
  assert.equal(
    inJoinUnit(() => "0::/system.slice/node-join-renew.service\n"),
    false,
  );
  assert.equal(
    inJoinUnit(() => "0::/user.slice/x-node-join-join.service.scope\n"),
    false,
  );
  assert.equal(
    inJoinUnit(() => {
      throw new Error("ENOENT");
    }),
    false,
  );
});

test("clearJoinPending from inside the unit removes its files without a daemon-reload (which would drop its ExecStartPost=); by hand it reloads", () => {
  for (const fromUnit of [true, false]) {
    const root = systemdRoot("nj-retry-");
    const ran: string[][] = [];
    // systemdRunning on a scratch root: what a booted / would do, the commands recorded
    const env: TimerEnv = {
      layout: layout(root),
      systemdRunning: true,
      systemdInstalled: true,
      run: (argv) => (ran.push(argv), { code: 0, output: "" }),
    };
    recordJoinFailure({
      env,
      exec: ["/usr/bin/node-join"],
      config: "nodeName: n1\n",
      err: new CaUnreachableError("CA down"),
      now: new Date(0),
    });
    const unit = join(root, "etc/systemd/system/node-join-join.service");
    assert.ok(existsSync(unit));
    ran.length = 0;
    const removed = clearJoinPending(env, fromUnit);
    assert.ok(removed.includes(unit), removed.join(", "));
    assert.ok(!existsSync(unit));
    assert.ok(!existsSync(join(root, "var/lib/node-join/join-pending.json")));
    assert.deepEqual(ran, fromUnit ? [] : [["systemctl", "daemon-reload"]], `fromUnit ${fromUnit}`);
  }
});
