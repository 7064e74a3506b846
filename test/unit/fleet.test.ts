// A fleet simulation of the renewal schedule: 10,000 certificates issued within one hour, renewed
// by the deadline rule at the first firing of the twice-daily timer (plus its
// RandomizedDelaySec=1h)
// after their deadline. Reports the CA's peak requests per minute against the mean, and compares
// with what a fixed deadline (no per-certificate fraction) would do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { jitterFraction, signerChangeDeadline } from "../../agent/pki/deadline.js";
import { mulberry32 } from "../helpers/prng.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const YEAR = 365 * DAY;
const N = 10_000;
// Fixed, so the thresholds below judge the same fleet on every run instead of a fresh sample.
const SEED = 0x6e6a_2026;

/** The first timer firing at or after `t`: 00:00 and 12:00 UTC plus a fresh delay in [0, 1h). */
function nextFiring(t: number, random: () => number): number {
  const halfDay = 12 * HOUR;
  let slot = Math.floor(t / halfDay) * halfDay;
  for (;;) {
    const fire = slot + random() * HOUR;
    if (fire >= t) return fire;
    slot += halfDay;
  }
}

function simulate(fraction: (serial: string) => number) {
  // Fresh generators per simulation, one for the fleet and one for the timer (which draws a varying
  // number of delays): both rules are judged on the same issuance times and serials.
  const fleet = mulberry32(SEED);
  const timer = mulberry32(SEED + 1);
  const start = Date.UTC(2026, 0, 1);
  const perMinute = new Map<number, number>();
  const renewals: number[] = [];
  for (let i = 0; i < N; i++) {
    const notBefore = start + fleet.random() * HOUR;
    const serial = fleet.hex(20);
    const deadline = notBefore + YEAR * fraction(serial);
    const at = nextFiring(deadline, timer.random);
    renewals.push(at);
    const minute = Math.floor(at / 60_000);
    perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
  }
  const first = Math.min(...renewals);
  const last = Math.max(...renewals);
  const activeMinutes = perMinute.size;
  const peak = Math.max(...perMinute.values());
  const spanDays = (last - first) / DAY;
  // Mean over the whole renewal window, the load a CA has to be sized for on average.
  const meanPerMinute = N / ((last - first) / 60_000 + 1);
  return {
    peak,
    meanPerMinute,
    spanDays,
    activeMinutes,
    first: (first - start) / YEAR,
    last: (last - start) / YEAR,
  };
}

test("the deadline rule spreads a fleet's renewals over the 70-90% window instead of one spike", () => {
  const rule = simulate((serial) => jitterFraction(serial, "node"));
  const fixed = simulate(() => 0.8);
  console.error(
    `# fleet of ${N}: kubelet rule: renewals over ${rule.spanDays.toFixed(1)} days (${(rule.first * 100).toFixed(1)}%..${(rule.last * 100).toFixed(1)}% of the lifetime), ` +
      `peak ${rule.peak}/min vs mean ${rule.meanPerMinute.toFixed(3)}/min over the window, ${rule.activeMinutes} distinct minutes; ` +
      `fixed 80% deadline: all within ${fixed.spanDays.toFixed(2)} days, peak ${fixed.peak}/min`,
  );
  assert.ok(
    rule.first >= 0.7 && rule.last < 0.9 + 2 / 365,
    "renewals fall in the 70-90% window (plus at most one timer period)",
  );
  assert.ok(rule.spanDays > 60, `spread over ${rule.spanDays} days`);
  assert.ok(rule.peak <= 15, `peak ${rule.peak}/min`);
  assert.ok(
    fixed.peak >= 10 * rule.peak,
    `a fixed deadline spikes: ${fixed.peak}/min vs ${rule.peak}/min`,
  );
  assert.ok(fixed.spanDays < 1);
});

/**
 * A CA switches to a new signer at `switchAt`: each of N certificates (issued over the past year,
 * all still signed by the retiring signer) sits on a node whose timer first sees the new signer at
 * its next firing; `deadline` gives when it is renewed from then.
 */
function simulateSwitch(deadline: (serial: string, seenAt: number) => number) {
  const fleet = mulberry32(SEED + 2);
  const timer = mulberry32(SEED + 3);
  const switchAt = Date.UTC(2027, 5, 1, 3, 0);
  const perMinute = new Map<number, number>();
  const renewals: number[] = [];
  for (let i = 0; i < N; i++) {
    const serial = fleet.hex(20);
    const seenAt = nextFiring(switchAt, timer.random);
    const at = Math.max(seenAt, nextFiring(deadline(serial, seenAt), timer.random));
    renewals.push(at);
    const minute = Math.floor(at / 60_000);
    perMinute.set(minute, (perMinute.get(minute) ?? 0) + 1);
  }
  const first = Math.min(...renewals);
  const last = Math.max(...renewals);
  return {
    peak: Math.max(...perMinute.values()),
    spanDays: (last - first) / DAY,
    firstAfterSwitchHours: (first - switchAt) / HOUR,
  };
}

test("a CA switch spreads the early renewals of renew.onSignerChange over the window instead of sending the whole fleet at once", () => {
  const windowMs = 7 * DAY;
  const early = simulateSwitch((serial, seenAt) =>
    signerChangeDeadline({ serial, notBefore: new Date(0), notAfter: new Date(0) }, "node", {
      seenAt: new Date(seenAt),
      windowMs,
      signer: "new",
    }).getTime(),
  );
  // Without the spread: every node renews at the first run that sees the new signer.
  const atOnce = simulateSwitch((_serial, seenAt) => seenAt);
  console.error(
    `# CA switch, fleet of ${N}: early renewals over ${early.spanDays.toFixed(1)} days, peak ${early.peak}/min; ` +
      `all at the first run: within ${atOnce.spanDays.toFixed(2)} days, peak ${atOnce.peak}/min`,
  );
  assert.ok(early.spanDays > 6.5 && early.spanDays < 7.6, `spread over ${early.spanDays} days`);
  // The timer fires twice a day within an hour (RandomizedDelaySec): 14 hours of firings a week.
  assert.ok(early.peak <= 30, `peak ${early.peak}/min`);
  assert.ok(atOnce.peak >= 5 * early.peak, `at once: ${atOnce.peak}/min vs ${early.peak}/min`);
  assert.ok(atOnce.spanDays < 1);
});
