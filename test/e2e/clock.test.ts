// Boards without a clock (issue 22, items 1-4) against a real CFSSL, the host's clock moved with
// libfaketime (helpers/faketime.ts); the CA keeps the true time.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { runCli } from "../helpers/cli.js";
import { atClock, expectClockNotSetOnJoined, needFaketime } from "../helpers/faketime.js";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";

needFaketime();

let ca: CfsslCa;
before(async () => {
  ca = await startCfssl();
});
after(async () => {
  await ca?.stop();
});

function joinArgs(root: string, extra: string[] = []): string[] {
  return [...cfsslWorkerJoin(root, ca, { "ca-auth-key-file": ca.installAuthKey(root) }), ...extra];
}

test("join at 1970: exit 11 naming the clock (not 5 blaming the CA), nothing written", async () => {
  const root = tempRoot();
  const args = joinArgs(root, ["--timeout", "6s"]);
  const before = snapshot(root);
  const r = await atClock("@1970-01-02 00:00:00", args);
  assert.equal(r.code, 11, r.stderr);
  assert.match(
    r.stderr,
    /waiting up to 6s \(--timeout\) for the clock to be set \(NTP\): the host's clock reads 1970-01-02/,
  );
  assert.match(
    r.stderr,
    /error: the host's clock reads 1970-01-02\S+, before \S+ \(node-join's build time\)/,
  );
  assert.doesNotMatch(r.stderr, /not valid before/);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});

test("join a few days behind or ahead: waits, then exit 11 naming the clock; status, renew at 1970 and 20 years ahead on a joined node: exit 11, nothing changed", async () => {
  const root = tempRoot();
  // Behind: a fresh bundle's build time is the floor already.
  const behind = await atClock("-3d", joinArgs(root, ["--timeout", "6s"]));
  assert.equal(behind.code, 11, behind.stderr);
  assert.match(
    behind.stderr,
    /waiting up to 6s .*the host's clock reads \S+, before \S+ \(node-join's build time\)/,
  );
  // Ahead: above every floor, off the CA's Date.
  const ahead3d = await atClock("+3d", joinArgs(root, ["--timeout", "6s"]));
  assert.equal(ahead3d.code, 11, ahead3d.stderr);
  assert.match(
    ahead3d.stderr,
    /waiting up to 6s .*the host's clock reads \S+, [23]d ahead of CA kubernetes \(cfssl \S+\) \(its Date: \S+\), over clock\.tolerance 5m/,
  );
  assert.equal(ahead3d.stderr.match(/waiting up to/g)?.length, 1, ahead3d.stderr);
  const joined = await runCli(joinArgs(root, ["--no-timer"]));
  assert.equal(joined.code, 0, joined.stderr);
  const before = snapshot(root);
  await expectClockNotSetOnJoined(root, "cfssl");
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});

test("a join waiting for the clock under the lock does not block status (which takes no lock); a renew meanwhile is exit 7, the timer's to retry", async () => {
  const root = tempRoot();
  const joined = await runCli(joinArgs(root, ["--no-timer"]));
  assert.equal(joined.code, 0, joined.stderr);
  // Three days ahead: above every floor, so the wait is for the CA's Date, inside the lock.
  const waiting = atClock("+3d", joinArgs(root, ["--force", "--timeout", "20s"]));
  const lock = join(root, "var/lib/node-join/lock");
  const start = Date.now();
  while (!existsSync(lock)) {
    assert.ok(Date.now() - start < 15_000, "the waiting join took the lock");
    await new Promise((r) => setTimeout(r, 100));
  }
  const t0 = Date.now();
  const st = await runCli(["status", "--root", root]);
  assert.equal(st.code, 0, st.stdout + st.stderr);
  assert.ok(Date.now() - t0 < 10_000, "status answered at once");
  assert.ok(existsSync(lock), "while the join still waits");
  const renew = await runCli(["renew", "--root", root]);
  assert.equal(renew.code, 7, renew.stderr);
  const w = await waiting;
  assert.equal(w.code, 11, w.stderr);
  assert.ok(!existsSync(lock), "released");
});

test("the metrics textfile says when the last run found the clock not set, and how far off: status at 1970, renew 20 years ahead; a run with the clock right clears it", async () => {
  const root = tempRoot();
  mkdirSync(join(root, "var/lib/node_exporter/textfile_collector"), { recursive: true });
  const textfile = join(root, "var/lib/node_exporter/textfile_collector/node_join.prom");
  const sample = (name: string) => {
    const m = new RegExp(`^${name} (-?\\d+)$`, "m").exec(readFileSync(textfile, "utf8"));
    return m ? Number(m[1]) : undefined;
  };
  const joined = await runCli(joinArgs(root, ["--no-timer"]));
  assert.equal(joined.code, 0, joined.stderr);
  assert.equal(sample("node_join_clock_not_set"), 0);
  assert.equal(sample("node_join_clock_offset_seconds"), undefined);
  const year = 365 * 86400;

  const st = await atClock("@1970-01-02 00:00:00", ["status", "--root", root]);
  assert.equal(st.code, 11, st.stdout + st.stderr);
  assert.equal(sample("node_join_clock_not_set"), 1);
  // behind its floor (the certificates' NotBefore, about now) by some 56 years
  assert.ok(sample("node_join_clock_offset_seconds")! < -50 * year, readFileSync(textfile, "utf8"));

  const ahead = await atClock("+20y", ["renew", "--root", root]);
  assert.equal(ahead.code, 11, ahead.stderr);
  assert.equal(sample("node_join_clock_not_set"), 1);
  const off = sample("node_join_clock_offset_seconds")!;
  assert.ok(off > 19 * year && off < 21 * year, `ahead of the CA's Date by 20 years: ${off}`);

  const now = await runCli(["status", "--root", root]);
  assert.equal(now.code, 0, now.stdout + now.stderr);
  assert.equal(sample("node_join_clock_not_set"), 0);
  assert.equal(sample("node_join_clock_offset_seconds"), undefined);
});
