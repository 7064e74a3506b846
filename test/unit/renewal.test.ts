import { test } from "node:test";
import assert from "node:assert/strict";
import { dueness, jitterFraction, renewalDeadline } from "../../agent/pki/deadline.js";
import { cronSchedule, renderCron, renderService, renderTimer } from "../../agent/ops/timer.js";
import { podsForKinds } from "../../agent/pki/certs.js";
import { sampleTextfiles } from "../helpers/metrics-samples.js";
import { mulberry32 } from "../helpers/prng.js";

const YEAR = 365 * 86400_000;
const cert = (serial: string, start = Date.UTC(2026, 0, 1)) => ({
  serial,
  notBefore: new Date(start),
  notAfter: new Date(start + YEAR),
});

test("the kubelet rule spreads deadlines uniformly over 70-90% of the lifetime", () => {
  const n = 20_000;
  // Seeded: the mean and bucket thresholds judge the same serials on every run.
  const serials = mulberry32(0x5e71a1);
  const buckets = new Array<number>(10).fill(0);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const f = jitterFraction(serials.hex(16), "node-1");
    assert.ok(f >= 0.7 && f < 0.9, String(f));
    sum += f;
    buckets[Math.floor((f - 0.7) / 0.02)]!++;
  }
  assert.ok(Math.abs(sum / n - 0.8) < 0.003, `mean ${sum / n}`);
  for (const b of buckets) assert.ok(Math.abs(b / n - 0.1) < 0.015, `bucket share ${b / n}`);
});

test("one certificate on one node always gets the same deadline; another node another one", () => {
  const c = cert("3c4c3c93b42cf31d4edac133c72f17aed35c6945");
  const a = renewalDeadline(c, { nodeName: "w1" }).getTime();
  for (let i = 0; i < 5; i++) assert.equal(renewalDeadline(c, { nodeName: "w1" }).getTime(), a);
  assert.equal(
    renewalDeadline({ ...c, serial: c.serial.toUpperCase() }, { nodeName: "w1" }).getTime(),
    a,
    "serial case does not matter",
  );
  assert.notEqual(renewalDeadline(c, { nodeName: "w2" }).getTime(), a);
  const f = (a - c.notBefore.getTime()) / YEAR;
  assert.ok(f >= 0.7 && f < 0.9);
});

test("--before replaces the rule: renew when less than that remains", () => {
  const c = cert("01");
  const d = renewalDeadline(c, { nodeName: "w1", beforeMs: 30 * 86400_000 });
  assert.equal(d.getTime(), c.notAfter.getTime() - 30 * 86400_000);
  assert.equal(
    dueness(c, { nodeName: "w1", beforeMs: 30 * 86400_000 }, new Date(d.getTime() - 1)).due,
    false,
  );
  const due = dueness(c, { nodeName: "w1", beforeMs: 30 * 86400_000 }, new Date(d.getTime() + 1));
  assert.equal(due.due, true);
  assert.ok(due.due && /less than renew\.before remains/.test(due.reason) && !due.expired);
});

test("dueness: not yet, past the deadline, expired", () => {
  const c = cert("ab");
  const deadline = renewalDeadline(c, { nodeName: "n" });
  assert.equal(dueness(c, { nodeName: "n" }, new Date(deadline.getTime() - 60_000)).due, false);
  const past = dueness(c, { nodeName: "n" }, new Date(deadline.getTime() + 60_000));
  assert.ok(past.due && !past.expired && /past its renewal deadline/.test(past.reason));
  const gone = dueness(c, { nodeName: "n" }, new Date(c.notAfter.getTime() + 1));
  assert.ok(gone.due && gone.expired && /expired at/.test(gone.reason));
});

// promtool's verdict on these same texts is checked in test/e2e/metrics.test.ts (promtool is an apt
// tool).
test("the metrics textfile keeps other commands' last run", () => {
  const { second } = sampleTextfiles();
  assert.match(second, /^node_join_last_run_success\{command="join"\} 1$/m);
  assert.match(second, /^node_join_last_run_success\{command="renew"\} 0$/m);
  assert.match(
    second,
    /^node_join_certificate_present\{kind="apiserver",file="\/etc\/kubernetes\/pki\/apiserver.crt"\} 0$/m,
  );
  assert.match(
    second,
    /^node_join_certificate_expiry_timestamp_seconds\{kind="kubelet-client",.*\} 1826971200$/m,
  );
  assert.match(second, /file="\/weird \\"path\\"\\\\x"/);
});

test("timer units and cron line", () => {
  const svc = renderService("/usr/bin/node-join");
  for (const line of [
    "Type=oneshot",
    "ExecStart=/usr/bin/node-join renew",
    "After=network-online.target",
    "Wants=network-online.target",
  ])
    assert.ok(svc.includes(`\n${line}\n`), line);
  const tmr = renderTimer();
  for (const line of [
    "OnCalendar=*-*-* 00,12:00:00",
    "RandomizedDelaySec=1h",
    "Persistent=true",
    "WantedBy=timers.target",
  ])
    assert.ok(tmr.includes(`\n${line}\n`), line);
  const s = cronSchedule("w1");
  assert.deepEqual(cronSchedule("w1"), s);
  assert.ok(s.minute >= 0 && s.minute < 60 && s.hours[0] < 12 && s.hours[1] === s.hours[0] + 12);
  assert.match(
    renderCron("/usr/bin/node-join", "w1"),
    new RegExp(
      `^${s.minute} ${s.hours[0]},${s.hours[1]} \\* \\* \\* root /usr/bin/node-join renew`,
      "m",
    ),
  );
  const many = new Set(Array.from({ length: 200 }, (_, i) => cronSchedule(`node-${i}`).minute));
  assert.ok(many.size > 40, "minutes spread across nodes");
});

test("static pods to restart follow the renewed kinds", () => {
  assert.deepEqual(podsForKinds(["kubelet-client"]), []);
  assert.deepEqual(podsForKinds(["apiserver", "front-proxy-client"]), ["kube-apiserver"]);
  assert.deepEqual(
    podsForKinds(["etcd-peer", "scheduler.conf", "controller-manager.conf"]).sort(),
    ["etcd", "kube-controller-manager", "kube-scheduler"],
  );
});
