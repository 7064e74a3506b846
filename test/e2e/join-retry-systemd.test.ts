// A join that cannot finish at first boot is not lost (issue 22 item 6), under a real systemd: the
// host's root booted in a container (helpers/nspawn.ts), a first join there with the CA down, or
// the clock wrong (libfaketime), leaves node-join-join.service, which systemd itself restarts
// until the node joins; a refusal that needs a person does not loop.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { useCfssl } from "../helpers/cfssl.js";
import { needFaketime } from "../helpers/faketime.js";
import { forward, freePort } from "../helpers/listening.js";
import { bootHostContainer, type Booted } from "../helpers/nspawn.js";

needFaketime();
const ca = useCfssl();

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const UNIT = "node-join-join.service";
const KEY = "/etc/node-join/ca-auth.key";
const PENDING = "/var/lib/node-join/join-pending.json";

/**
 * A node about to join: the auth key where the join reads it, a kubelet the join's unit starts
 * once joined (the package's unit, disabled), and the wait between attempts shortened from 2min as
 * an operator would: a drop-in (systemd.unit(5)), written before the unit exists.
 */
async function prepare(c: Booted): Promise<string[]> {
  await c.write(KEY, `${ca.authKeyHex}\n`, "0600");
  await c.write(
    "/etc/systemd/system/kubelet.service",
    "[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n",
  );
  await c.write(`/etc/systemd/system/${UNIT}.d/retry.conf`, "[Service]\nRestartSec=1s\n");
  await c.ok(["systemctl", "daemon-reload"]);
  return c.self();
}

/** The join flags against `url` (the CA, or a port nothing listens on yet) with `pin`. */
const joinFlags = (url: string, pin = ca.pin) =>
  cfsslWorkerJoin("/", { url, pin }, { "ca-auth-key-file": KEY, "node-name": "retry1" });

async function show(c: Booted, prop: string, unit = UNIT): Promise<string> {
  return (await c.ok(["systemctl", "show", "-P", prop, unit])).trim();
}

/** join-pending.json's record, or undefined once it is gone. */
async function pending(
  c: Booted,
): Promise<{ attempts: number; exitCode: number; retrying: boolean } | undefined> {
  const r = await c.exec(["cat", PENDING]);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

/** Polls `check` every half second until it holds; fails naming `what` after `ms`. */
async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function journal(c: Booted): Promise<string> {
  return c.ok(["journalctl", "--no-pager", "-o", "cat", "-u", UNIT]);
}

/** The node joined through the unit: credentials, the unit gone, the kubelet started, status 0. */
async function assertJoinedByUnit(c: Booted, self: string[]): Promise<void> {
  await until("the retry to join and remove its unit", 120_000, async () => {
    const unitGone = (await c.exec(["test", "-e", `/etc/systemd/system/${UNIT}`])).code !== 0;
    const joined = (await c.exec(["test", "-f", "/etc/kubernetes/kubelet.conf"])).code === 0;
    const done = ["inactive", "failed"].includes(await show(c, "ActiveState"));
    return unitGone && joined && done;
  });
  const log = await journal(c);
  assert.equal(await show(c, "Result"), "success", log);
  assert.match(log, /joined worker node retry1/);
  assert.match(log, /joined: removed the join retry/);
  for (const gone of [
    `/etc/systemd/system/multi-user.target.wants/${UNIT}`,
    "/var/lib/node-join/join-pending.yaml",
    PENDING,
  ])
    assert.notEqual((await c.exec(["test", "-e", gone])).code, 0, `${gone} removed`);
  // gone from systemd at its next reload (the unit does not reload itself: its ExecStartPost=
  // would go with it)
  await c.ok(["systemctl", "daemon-reload"]);
  assert.equal(await show(c, "LoadState"), "not-found", "the unit is gone from systemd too");
  // its ExecStartPost= started and enabled the kubelet
  await until("the kubelet to start", 30_000, async () => {
    return (await show(c, "ActiveState", "kubelet.service")) === "active";
  });
  assert.equal(
    (await c.exec(["systemctl", "is-enabled", "kubelet.service"])).stdout.trim(),
    "enabled",
  );
  assert.equal((await c.exec(["systemctl", "is-active", "node-join-renew.timer"])).code, 0);
  const st = await c.exec([...self, "status"], { env: { PATH } });
  assert.equal(st.code, 0, st.stdout + st.stderr);
  // no further attempt once joined
  const restarts = await show(c, "NRestarts");
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(await show(c, "NRestarts"), restarts);
}

test("under a real systemd, a first join with the CA down leaves node-join-join.service enabled, systemd restarts it until the CA is up, then it joins, removes itself and starts the kubelet; status goes from 12 to 0", async () => {
  const port = await freePort();
  const c = await bootHostContainer();
  try {
    const self = await prepare(c);
    const first = await c.exec(
      [...self, ...joinFlags(`http://127.0.0.1:${port}`), "--timeout", "1s"],
      { env: { PATH } },
    );
    assert.equal(first.code, 3, first.stderr);
    assert.match(
      first.stderr,
      /join pending: node-join-join\.service installed, enabled, started;/,
    );
    assert.equal((await c.exec(["systemctl", "is-enabled", UNIT])).stdout.trim(), "enabled");
    assert.equal(await show(c, "RestartUSec"), "1s", "the operator's drop-in applies");

    // systemd restarts it on exit 3: its restart counter and the attempts recorded grow
    await until("systemd to restart the retry twice", 90_000, async () => {
      return Number(await show(c, "NRestarts")) >= 2 && ((await pending(c))?.attempts ?? 0) >= 3;
    });
    assert.equal((await c.exec(["test", "-e", "/etc/kubernetes/kubelet.conf"])).code, 1);
    assert.equal(await show(c, "ActiveState", "kubelet.service"), "inactive", "no kubelet yet");
    const st = await c.exec([...self, "status"], { env: { PATH } });
    assert.equal(st.code, 12, st.stdout + st.stderr);
    assert.match(
      st.stderr,
      /^node-join: error: join pending: .*127\.0\.0\.1:\d+.*\(exit 3, \d+ attempt\(s\) since .*\); node-join-join\.service tries again on its own/m,
    );

    // The CA comes up at that address: the next attempt joins, on its own.
    const stop = await forward(port, ca.url);
    try {
      await assertJoinedByUnit(c, self);
    } finally {
      await stop();
    }
  } finally {
    await c.stop();
  }
});

test("under a real systemd, a first join refused for a reason a person must fix (wrong pin) leaves no unit; a pending retry that meets a wrong pin stops: systemd does not restart it", async () => {
  const port = await freePort();
  const wrongPin = `sha256:${"0".repeat(64)}`;
  const c = await bootHostContainer();
  try {
    const self = await prepare(c);
    const refused = await c.exec([...self, ...joinFlags(ca.url, wrongPin)], { env: { PATH } });
    assert.equal(refused.code, 5, refused.stderr);
    assert.doesNotMatch(refused.stderr, /join pending/);
    assert.equal(await show(c, "LoadState"), "not-found", "no retry unit");

    // The CA down at first (exit 3: retried), then reachable but not the pinned one (exit 5).
    const first = await c.exec(
      [...self, ...joinFlags(`http://127.0.0.1:${port}`, wrongPin), "--timeout", "1s"],
      { env: { PATH } },
    );
    assert.equal(first.code, 3, first.stderr);
    await until("a restart of the retry", 60_000, async () => {
      return Number(await show(c, "NRestarts")) >= 1;
    });
    const stop = await forward(port, ca.url);
    try {
      await until("the retry to meet the wrong pin", 60_000, async () => {
        return (await pending(c))?.exitCode === 5;
      });
      await until("the retry unit to stop", 30_000, async () => {
        return ["inactive", "failed"].includes(await show(c, "ActiveState"));
      });
      const restarts = await show(c, "NRestarts");
      const attempts = (await pending(c))!.attempts;
      // ten times the wait between attempts: nothing runs again
      await new Promise((r) => setTimeout(r, 10_000));
      const log = await journal(c);
      assert.equal(await show(c, "NRestarts"), restarts, log);
      assert.equal((await pending(c))!.attempts, attempts, log);
      assert.equal((await pending(c))!.retrying, false);
      assert.equal(await show(c, "ExecMainStatus"), "5", log);
      assert.match(log, /join pending: not retried \(exit 5 needs a person\); removed /);
      assert.notEqual((await c.exec(["test", "-e", `/etc/systemd/system/${UNIT}`])).code, 0);
      assert.equal((await c.exec(["test", "-e", "/etc/kubernetes/kubelet.conf"])).code, 1);
      const st = await c.exec([...self, "status"], { env: { PATH } });
      assert.equal(st.code, 12, st.stdout + st.stderr);
      assert.match(st.stderr, /\(exit 5, .*not retried: fix that, then run node-join join/);
    } finally {
      await stop();
    }
  } finally {
    await c.stop();
  }
});

test("under a real systemd, a first join with the clock at 1970 (libfaketime) exits 11 and leaves the retry; the retry, with the clock right, joins", async () => {
  const c = await bootHostContainer();
  try {
    const self = await prepare(c);
    // Keep the unit from starting at once, as at a first boot before the clock is set: the
    // first attempt's own `systemctl start` runs with the clock still wrong. Masking it would
    // make the enable fail; a condition no path meets holds it instead, removed below.
    await c.write(
      `/etc/systemd/system/${UNIT}.d/hold.conf`,
      "[Unit]\nConditionPathExists=/run/nj-test-clock-set\n",
    );
    await c.ok(["systemctl", "daemon-reload"]);
    const first = await c.exec(
      ["faketime", "-f", "@1970-01-02 00:00:00", ...self, ...joinFlags(ca.url), "--timeout", "3s"],
      { env: { PATH, FAKETIME_NO_CACHE: "1" } },
    );
    assert.equal(first.code, 11, first.stderr);
    assert.match(first.stderr, /the host's clock reads 1970-01-02/);
    assert.match(
      first.stderr,
      /join pending: node-join-join\.service installed, enabled, started;/,
    );
    assert.equal((await c.exec(["test", "-e", "/etc/kubernetes/kubelet.conf"])).code, 1);
    const st = await c.exec([...self, "status"], { env: { PATH } });
    assert.equal(st.code, 12, st.stdout + st.stderr);
    assert.match(
      st.stderr,
      /join pending: the host's clock reads 1970-01-02.*\(exit 11, 1 attempt/,
    );

    // The clock is set (here: the test's hold lifted): systemd runs the retry, which joins.
    await c.ok(["touch", "/run/nj-test-clock-set"]);
    await c.ok(["systemctl", "start", "--no-block", UNIT]);
    await assertJoinedByUnit(c, self);
  } finally {
    await c.stop();
  }
});
