// Boards without a clock (issue 22, items 1-4) against a real CFSSL, the host's clock moved with
// libfaketime (Debian faketime, scripts/deps.sh): a child node-join inherits it (FAKETIME_NO_CACHE
// makes each time() call read the setting anew; the CA, started before, keeps the true time).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { binary, runCli, spawnCollect } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";

// A missing faketime fails loudly: scripts/deps.sh installs it.
execFileSync("faketime", ["-f", "+0", "true"]);

let ca: CfsslCa;
before(async () => {
  ca = await startCfssl();
});
after(async () => {
  await ca?.stop();
});

/** node-join with the host's clock at `spec` (faketime's "@1970-01-02 00:00:00", "+20y", "-3d"). */
async function at(spec: string, args: string[]) {
  const r = await spawnCollect("faketime", ["-f", spec, ...binary(), ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, FAKETIME_NO_CACHE: "1" },
  });
  return r;
}

function joinArgs(root: string, extra: string[] = []): string[] {
  return [...cfsslWorkerJoin(root, ca, { "ca-auth-key-file": ca.installAuthKey(root) }), ...extra];
}

test("join at 1970: exit 11 naming the clock (not 5 blaming the CA), nothing written", async () => {
  const root = tempRoot();
  const args = joinArgs(root, ["--timeout", "6s"]);
  const before = snapshot(root);
  const r = await at("@1970-01-02 00:00:00", args);
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
  const behind = await at("-3d", joinArgs(root, ["--timeout", "6s"]));
  assert.equal(behind.code, 11, behind.stderr);
  assert.match(
    behind.stderr,
    /waiting up to 6s .*the host's clock reads \S+, before \S+ \(node-join's build time\)/,
  );
  // Ahead: above every floor, off the CA's Date.
  const ahead3d = await at("+3d", joinArgs(root, ["--timeout", "6s"]));
  assert.equal(ahead3d.code, 11, ahead3d.stderr);
  assert.match(
    ahead3d.stderr,
    /waiting up to 6s .*the host's clock reads \S+, [23]d ahead of CA kubernetes \(cfssl \S+\) \(its Date: \S+\), over clock\.tolerance 5m/,
  );
  assert.equal(ahead3d.stderr.match(/waiting up to/g)?.length, 1, ahead3d.stderr);
  const joined = await runCli(joinArgs(root, ["--no-timer"]));
  assert.equal(joined.code, 0, joined.stderr);
  const before = snapshot(root);
  const st = await at("@1970-01-02 00:00:00", ["status", "--root", root]);
  assert.equal(st.code, 11, st.stdout + st.stderr);
  assert.match(st.stdout, /^clock: not set: the host's clock reads 1970-01-02/m);
  const renew = await at("@1970-01-02 00:00:00", ["renew", "--root", root, "--force"]);
  assert.equal(renew.code, 11, renew.stderr);
  assert.match(renew.stderr, /the host's clock reads 1970-01-02\S+, before .*the clock is not set/);
  const ahead = await at("+20y", ["renew", "--root", root]);
  assert.equal(ahead.code, 11, ahead.stderr);
  assert.match(ahead.stderr, /ahead of CA kubernetes \(cfssl \S+\) \(its Date: \S+\)/);
  assert.doesNotMatch(ahead.stderr, /expired at/);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});
