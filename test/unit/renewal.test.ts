import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { dueness, jitterFraction, renewalDeadline } from "../../agent/pki/deadline.js";
import { previousRuns, renderMetrics } from "../../agent/ops/metrics.js";
import { cronSchedule, renderCron, renderService, renderTimer } from "../../agent/ops/timer.js";
import { podsForKinds } from "../../agent/ops/static-pods.js";
import { checkMetrics } from "../helpers/promtool.js";

const YEAR = 365 * 86400_000;
const cert = (serial: string, start = Date.UTC(2026, 0, 1)) => ({ serial, notBefore: new Date(start), notAfter: new Date(start + YEAR) });

test("the kubelet rule spreads deadlines uniformly over 70-90% of the lifetime", () => {
  const n = 20_000;
  const buckets = new Array<number>(10).fill(0);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const f = jitterFraction(randomBytes(16).toString("hex"), "node-1");
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
  assert.equal(renewalDeadline({ ...c, serial: c.serial.toUpperCase() }, { nodeName: "w1" }).getTime(), a, "serial case does not matter");
  assert.notEqual(renewalDeadline(c, { nodeName: "w2" }).getTime(), a);
  const f = (a - c.notBefore.getTime()) / YEAR;
  assert.ok(f >= 0.7 && f < 0.9);
});

test("--before replaces the rule: renew when less than that remains", () => {
  const c = cert("01");
  const d = renewalDeadline(c, { nodeName: "w1", beforeMs: 30 * 86400_000 });
  assert.equal(d.getTime(), c.notAfter.getTime() - 30 * 86400_000);
  assert.equal(dueness(c, { nodeName: "w1", beforeMs: 30 * 86400_000 }, new Date(d.getTime() - 1)).due, false);
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

test("the metrics textfile passes promtool and keeps other commands' last run", () => {
  const t = new Date("2026-11-23T12:00:00Z");
  const certs = [
    { kind: "kubelet-client", file: "/var/lib/kubelet/pki/kubelet-client-current.pem", notAfter: new Date("2027-11-23T12:00:00Z"), deadline: new Date("2027-08-01T00:00:00Z") },
    { kind: "etcd-server", file: '/weird "path"\\x', notAfter: new Date("2027-01-01T00:00:00Z"), deadline: new Date("2026-12-01T00:00:00Z") },
    { kind: "apiserver", file: "/etc/kubernetes/pki/apiserver.crt" },
  ];
  const first = renderMetrics(certs, { command: "join", success: true, time: t }, undefined);
  const second = renderMetrics(certs, { command: "renew", success: false, time: t, renewed: 0 }, t, previousRuns(first, "renew"));
  for (const text of [first, second]) {
    const r = checkMetrics(text);
    assert.equal(r.code, 0, r.output + text);
    assert.equal(r.output.trim(), "", "no lint warnings");
  }
  assert.match(second, /^node_join_last_run_success\{command="join"\} 1$/m);
  assert.match(second, /^node_join_last_run_success\{command="renew"\} 0$/m);
  assert.match(second, /^node_join_certificate_present\{kind="apiserver",file="\/etc\/kubernetes\/pki\/apiserver.crt"\} 0$/m);
  assert.match(second, /^node_join_certificate_expiry_timestamp_seconds\{kind="kubelet-client",.*\} 1826971200$/m);
  assert.match(second, /file="\/weird \\"path\\"\\\\x"/);
  assert.notEqual(checkMetrics("node_join_x{bad label} 1\n").code, 0, "promtool rejects a broken file (the check can fail)");
});

test("timer units and cron line", () => {
  const svc = renderService("/usr/bin/node-join");
  for (const line of ["Type=oneshot", "ExecStart=/usr/bin/node-join renew", "After=network-online.target", "Wants=network-online.target"]) assert.ok(svc.includes(`\n${line}\n`), line);
  const tmr = renderTimer();
  for (const line of ["OnCalendar=*-*-* 00,12:00:00", "RandomizedDelaySec=1h", "Persistent=true", "WantedBy=timers.target"]) assert.ok(tmr.includes(`\n${line}\n`), line);
  const s = cronSchedule("w1");
  assert.deepEqual(cronSchedule("w1"), s);
  assert.ok(s.minute >= 0 && s.minute < 60 && s.hours[0] < 12 && s.hours[1] === s.hours[0] + 12);
  assert.match(renderCron("/usr/bin/node-join", "w1"), new RegExp(`^${s.minute} ${s.hours[0]},${s.hours[1]} \\* \\* \\* root /usr/bin/node-join renew`, "m"));
  const many = new Set(Array.from({ length: 200 }, (_, i) => cronSchedule(`node-${i}`).minute));
  assert.ok(many.size > 40, "minutes spread across nodes");
});

test("static pods to restart follow the renewed kinds", () => {
  assert.deepEqual(podsForKinds(["kubelet-client"]), []);
  assert.deepEqual(podsForKinds(["apiserver", "front-proxy-client"]), ["kube-apiserver"]);
  assert.deepEqual(podsForKinds(["etcd-peer", "scheduler.conf", "controller-manager.conf"]).sort(), ["etcd", "kube-controller-manager", "kube-scheduler"]);
});
