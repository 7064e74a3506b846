// Boards without a clock (issue 22, items 1-4), in process: the host's clock injected, fake CAs
// that date their answers by their own (true) time, as CFSSL's and step-ca's Date header does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RuntimeSeams } from "../../agent/cli/context.js";
import { ExitCode } from "../../agent/common/errors.js";
import { clockFloor, clockVerdict, type Floor } from "../../agent/engine/clock.js";
import { certPin } from "../../agent/pki/x509.js";
import { FakeCa, fakeClock } from "../helpers/fake-ca.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { cli, DAY, joined } from "../helpers/joined.js";

const YEAR = 365 * DAY;
const T1970 = Date.UTC(1970, 0, 2);
const MIN = 60_000;

test("clockFloor: the latest of build time, NotBefores, the last run and timesyncd's clock file", () => {
  const d = (s: string) => new Date(s);
  const f = clockFloor({
    buildTime: d("2026-11-01T00:00:00Z"),
    notBefores: [{ kind: "kubelet-client", notBefore: d("2026-12-01T00:00:00Z") }],
    lastRun: d("2026-11-20T00:00:00Z"),
    timesyncClock: d("2026-11-30T00:00:00Z"),
  });
  assert.deepEqual(f, {
    at: d("2026-12-01T00:00:00Z"),
    source: "the NotBefore of the installed kubelet-client",
  });
  const timesync = clockFloor({
    buildTime: d("2026-11-01T00:00:00Z"),
    notBefores: [],
    timesyncClock: d("2026-12-03T00:00:00Z"),
  });
  assert.equal(timesync.source, "systemd-timesyncd's clock file");
});

test("clockVerdict: below the floor, off the CA's Date beyond the tolerance (either way), else ok", () => {
  const floor: Floor = { at: new Date("2026-12-01T00:00:00Z"), source: "node-join's build time" };
  const at = (s: string) => new Date(s);
  assert.equal(
    clockVerdict(at("1970-01-02T00:00:00Z"), floor, undefined, 5 * MIN).state,
    "behind-floor",
  );
  // Within the tolerance of the floor: a CA that backdates less than the tolerance is no alarm.
  assert.equal(clockVerdict(at("2026-11-30T23:58:00Z"), floor, undefined, 5 * MIN).state, "ok");
  const ca = { date: at("2026-12-07T12:00:00Z"), ca: "CA kubernetes (cfssl)" };
  assert.equal(clockVerdict(at("2026-12-07T12:04:59Z"), floor, ca, 5 * MIN).state, "ok");
  const ahead = clockVerdict(at("2046-12-07T12:00:00Z"), floor, ca, 5 * MIN);
  assert.equal(ahead.state, "skewed");
  const behind = clockVerdict(at("2026-12-04T12:00:00Z"), floor, ca, 5 * MIN);
  assert.ok(behind.state === "skewed" && behind.skewMs === -3 * DAY);
});

/** A worker's join on fake CAs that keep the true time while the host's clock is `clock`. */
async function joinArgs(root: string, hostClock: ReturnType<typeof fakeClock>) {
  const truth = Date.now();
  const cas = await FakeCa.forEveryCa(fakeClock(truth));
  for (const ca of Object.values(cas)) ca.ownTime = () => truth;
  const seams: RuntimeSeams = { clock: hostClock, backend: (ctx) => cas[ctx.ca.name] };
  const args = [
    ...["join", "--root", root, "--api-server", "https://10.0.0.1:6443"],
    ...["--ca-url", "http://ca.invalid:8888", "--ca-cert-hash", certPin(cas.kubernetes.anchor)],
    ...["--node-name", "w1", "--ip", "10.0.0.21", "--no-timer"],
  ];
  return { cas, seams, args, truth };
}

test("join at 1970 waits for the clock with one line, then fails with exit 11 naming the clock; nothing written", async () => {
  const root = tempRoot("nj-clock-");
  const before = snapshot(root);
  const clock = fakeClock(T1970);
  const { cas, seams, args } = await joinArgs(root, clock);
  const r = await cli([...args, "--timeout", "30s"], seams);
  assert.equal(r.code, ExitCode.clockNotSet, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.filter((l) => /waiting up to 30s/.test(l)).length, 1, r.stderr);
  assert.match(
    lines[0]!,
    /the host's clock reads 1970-01-02T00:00:\d\dZ, before \S+ \(node-join's build time\)/,
  );
  assert.match(
    r.stderr,
    /error: the host's clock reads 1970-01-0\S+, before .*gave up after 30s \(--timeout\)/,
  );
  assert.doesNotMatch(r.stderr, /not valid before|CA .* refused/);
  assert.equal(cas.kubernetes.signed.length, 0);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});

test("join at 1970 goes on once NTP sets the clock during its wait, and joins", async () => {
  const root = tempRoot("nj-clock-");
  const clock = fakeClock(T1970);
  const { seams, args, truth } = await joinArgs(root, clock);
  let sleeps = 0;
  const sleep = clock.sleep;
  // The second look finds the clock set: a jump of 56 years is not the timeout ending.
  clock.sleep = async (ms) => {
    if (++sleeps === 2) clock.set(truth);
    else await sleep(ms);
  };
  const r = await cli([...args, "--timeout", "1m"], seams);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.match(/waiting up to 1m/g)?.length, 1, r.stderr);
  assert.ok(existsSync(join(root, "var/lib/kubelet/pki/kubelet-client-current.pem")));
});

test("join with the clock three days behind the CA's Date waits (host and CA time named), then exits 11", async () => {
  const root = tempRoot("nj-clock-");
  const before = snapshot(root);
  const clock = fakeClock(Date.now() - 3 * DAY);
  const { cas, seams, args } = await joinArgs(root, clock);
  const r = await cli([...args, "--timeout", "20s"], seams);
  assert.equal(r.code, ExitCode.clockNotSet, r.stderr);
  assert.match(
    r.stderr,
    /waiting up to 20s \(--timeout\) for the clock to be set \(NTP\): the host's clock reads \S+, [23]d behind CA kubernetes \(fake\) \(its Date: \S+\), over clock\.tolerance 5m/,
  );
  assert.equal(cas.kubernetes.signed.length, 0);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
  // A tolerance wide enough to let the same clock through: the certificate is still checked by the
  // host's time, never the CA's; not yet valid by it, nothing is installed.
  const wide = await cli([...args, "--clock-tolerance", "4d"], seams);
  assert.equal(wide.code, ExitCode.verification, wide.stderr);
  assert.match(wide.stderr, /it is not valid before/);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});

test("join --dry-run reports the skew and does not wait", async () => {
  const root = tempRoot("nj-clock-");
  const clock = fakeClock(T1970);
  const { seams, args } = await joinArgs(root, clock);
  const r = await cli([...args, "--dry-run"], seams);
  assert.equal(r.code, ExitCode.clockNotSet, r.stderr);
  assert.match(r.stderr, /the host's clock reads 1970-01-02T00:00:00Z.*join would wait up to 5m/);
  assert.equal(clock.now(), T1970, "no wait");
});

test("status and renew at 1970 on a joined node: exit 11, nothing judged expired or not yet valid, nothing changed", async () => {
  const n = await joined();
  const before = snapshot(n.root);
  const signed = n.cas.kubernetes.signed.length;
  n.clock.set(T1970);
  const st = await n.run("status");
  assert.equal(st.code, ExitCode.clockNotSet, st.stdout);
  assert.match(
    st.stdout,
    /^clock: not set: the host's clock reads 1970-01-02T00:00:00Z, before \S+ \(the last run \(state file\)\)/m,
  );
  assert.match(st.stdout, /needs attention:\n {2}clock: the host's clock reads 1970/);
  assert.doesNotMatch(st.stdout, /expired|renewal due|not yet valid|\d+y/);
  const json = JSON.parse((await n.run("status", "--json")).stdout) as {
    clock: { state: string };
    certificates: { state: string }[];
  };
  assert.equal(json.clock.state, "not set");
  assert.ok(json.certificates.every((c) => c.state === "ok" || c.state === "clock not set"));
  const renew = await n.run("renew", "--force");
  assert.equal(renew.code, ExitCode.clockNotSet, renew.stderr);
  assert.match(
    renew.stderr,
    /error: the host's clock reads 1970-01-02T00:00:00Z, before .*the clock is not set; nothing was judged or changed/,
  );
  assert.equal(n.cas.kubernetes.signed.length, signed, "only join's");
  assert.deepEqual(diffSnapshots(before, snapshot(n.root)), []);
});

test("renew 20 years ahead: the CA's Date names the clock, exit 11, nothing replaced", async () => {
  const n = await joined();
  const truth = n.clock.now();
  for (const ca of Object.values(n.cas)) ca.ownTime = () => truth;
  const before = snapshot(n.root);
  const signed = n.cas.kubernetes.signed.length;
  n.clock.set(truth + 20 * YEAR);
  const r = await n.run("renew");
  assert.equal(r.code, ExitCode.clockNotSet, r.stderr);
  assert.match(
    r.stderr,
    /the host's clock reads \S+, \S+ ahead of CA kubernetes \(fake\) \(its Date: \S+\)/,
  );
  assert.doesNotMatch(r.stderr, /expired/);
  assert.equal(n.cas.kubernetes.signed.length, signed, "only join's");
  assert.deepEqual(diffSnapshots(before, snapshot(n.root)), []);
});

test("status says what systemd-timesyncd says, and its clock file raises the floor", async () => {
  const n = await joined();
  mkdirSync(join(n.root, "run/systemd/timesync"), { recursive: true });
  writeFileSync(join(n.root, "run/systemd/timesync/synchronized"), "");
  const st = await n.run("status");
  assert.equal(st.code, 0, st.stdout);
  assert.match(st.stdout, /^clock: synchronised \(systemd\)$/m);
  // The clock file last touched a day from now: today's clock is behind what timesyncd saw.
  const file = join(n.root, "var/lib/systemd/timesync/clock");
  mkdirSync(join(n.root, "var/lib/systemd/timesync"), { recursive: true });
  writeFileSync(file, "");
  const later = new Date(n.clock.now() + DAY);
  utimesSync(file, later, later);
  const behind = await n.run("status");
  assert.equal(behind.code, ExitCode.clockNotSet, behind.stdout);
  assert.match(behind.stdout, /\(systemd-timesyncd's clock file\)/);
});
