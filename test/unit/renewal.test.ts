import { test } from "node:test";
import assert from "node:assert/strict";
import { dueness, jitterFraction, renewalDeadline } from "../../agent/pki/deadline.js";
import {
  cronSchedule,
  renderCron,
  renderService,
  renderTimer,
  renewWritablePaths,
  runTimer,
  UNSAFE_ENV,
} from "../../agent/ops/timer.js";
import { UsageError } from "../../agent/common/errors.js";
import { layout, writeTargets } from "../../agent/store/layout.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
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
  assert.ok(
    due.due &&
      /^less than renew\.before \(30d\) remains \(since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/.test(
        due.reason,
      ) &&
      !due.expired,
  );
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
  const svc = renderService(["/usr/bin/node-join"]);
  for (const line of [
    "Type=oneshot",
    "ExecStart=/usr/bin/node-join renew",
    "TimeoutStartSec=30min",
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
    renderCron(["/usr/bin/node-join"], "w1"),
    new RegExp(
      `^${s.minute} ${s.hours[0]},${s.hours[1]} \\* \\* \\* root ulimit -c 0; unset [A-Z_ ]+; exec /usr/bin/node-join renew >/dev/null 2>&1$`,
      "m",
    ),
  );
  const many = new Set(Array.from({ length: 200 }, (_, i) => cronSchedule(`node-${i}`).minute));
  assert.ok(many.size > 40, "minutes spread across nodes");
});

/** The value of `key=` in a unit, the only line that sets it. */
function directive(unit: string, key: string): string {
  const lines = unit.split("\n").filter((l) => l.startsWith(`${key}=`));
  assert.equal(lines.length, 1, `${key}= once`);
  return lines[0]!.slice(key.length + 1);
}

test("ExecStart= quotes the binary the way systemd reads it back: spaces, %, $, quotes, backslashes", () => {
  // the executable's path is literal but for %; an argument's $ is expanded, so written $$
  const svc = renderService(["/opt/my tools/node-join%i$HOME", '/x/a"b\\c$HOME']);
  assert.equal(
    directive(svc, "ExecStart"),
    '"/opt/my tools/node-join%%i$HOME" "/x/a\\"b\\\\c$$HOME" renew',
  );
  // systemd refuses an executable path with a quote or a backslash: so does node-join, naming it
  for (const bad of ['/opt/a"b/node-join', "/opt/it's/node-join", "/opt/a\\b/node-join"])
    assert.throws(
      () => renderService([bad]),
      (e: unknown) =>
        e instanceof UsageError && /systemd does not run an executable whose path/.test(e.message),
    );
  // node + bundle (the bundle's default exec) stay two words
  assert.equal(
    directive(renderService(["/usr/bin/node", "/srv/node-join.cjs"]), "ExecStart"),
    "/usr/bin/node /srv/node-join.cjs renew",
  );
});

test("the renewal service is confined to the directories a renewal writes, with no core dumps and a start timeout", () => {
  const svc = renderService(["/usr/bin/node-join"]);
  for (const [key, value] of [
    ["NoNewPrivileges", "yes"],
    ["ProtectSystem", "strict"],
    ["ProtectHome", "read-only"],
    ["PrivateTmp", "yes"],
    ["LimitCORE", "0"],
    ["TimeoutStartSec", "30min"],
  ])
    assert.equal(directive(svc, key!), value, key);
  assert.equal(
    directive(svc, "ReadWritePaths"),
    "-/etc/kubernetes -/var/lib/kubelet/pki -/etc/node-join -/var/lib/node-join -/var/lib/node_exporter/textfile_collector",
  );
  // every directory the install transaction, its recovery and the static pod restart write in
  const l = layout("/");
  const writable = renewWritablePaths();
  for (const dir of writeTargets(l).filter((d) => d !== l.systemdDir && d !== l.cronDir))
    assert.ok(
      writable.some((w) => dir === w || dir.startsWith(`${w}/`)),
      `${dir} is writable to the unit`,
    );
  assert.ok(writable.includes("/etc/kubernetes"), "manifests and the paused manifests");
  assert.ok(!writable.some((w) => w.startsWith("/etc/systemd") || w.startsWith("/etc/cron")));
  assert.equal(
    directive(
      renderService(["/usr/bin/node-join"], { metricsDir: "/srv/prom files%" }),
      "ReadWritePaths",
    ),
    '-/etc/kubernetes -/var/lib/kubelet/pki -/etc/node-join -/var/lib/node-join "-/srv/prom files%%"',
    "a configured textfile directory, quoted",
  );
  const unset = directive(svc, "UnsetEnvironment").split(" ");
  for (const v of ["OPENSSL_CONF", "OPENSSL_MODULES", "LD_PRELOAD", "NODE_OPTIONS"])
    assert.ok(unset.includes(v), v);
  assert.deepEqual(unset, [...UNSAFE_ENV]);
});

test("the cron line quotes the binary for /bin/sh, unsets the same environment and refuses %", () => {
  const line = renderCron(["/opt/it's here/node-join"], "w1").split("\n")[3]!;
  assert.match(
    line,
    / root ulimit -c 0; unset [A-Z_ ]+; exec '\/opt\/it'\\''s here\/node-join' renew >\/dev\/null 2>&1$/,
  );
  assert.ok(line.includes(`unset ${UNSAFE_ENV.join(" ")};`));
  assert.throws(
    () => renderCron(["/opt/50%/node-join"], "w1"),
    (e: unknown) => e instanceof UsageError && /cannot hold %/.test(e.message),
  );
});

test("timer install refuses a relative --binary or one with a control character, and writes nothing", () => {
  for (const scheduler of ["systemd", "cron"] as const) {
    for (const [binary, why] of [
      ["/usr/bin/node-join\nExecStartPre=/bin/touch /tmp/pwned", /holds a control character/],
      ["/usr/bin/node-join\r", /holds a control character/],
      ["node-join", /must be an absolute path/],
      ["", /must be an absolute path/],
    ] as const) {
      const root = tempRoot("nj-unit-timer-");
      const before = snapshot(root);
      assert.throws(
        () => runTimer("install", { layout: layout(root), seed: "w1", binary, scheduler }),
        (e: unknown) =>
          e instanceof UsageError &&
          e.exitCode === 2 &&
          e.message.startsWith("--binary ") &&
          why.test(e.message) &&
          !e.message.includes("\n"),
      );
      assert.deepEqual(diffSnapshots(before, snapshot(root)), [], `${scheduler}: nothing written`);
    }
  }
});

test("static pods to restart follow the renewed kinds", () => {
  assert.deepEqual(podsForKinds(["kubelet-client"]), []);
  assert.deepEqual(podsForKinds(["apiserver", "front-proxy-client"]), ["kube-apiserver"]);
  assert.deepEqual(
    podsForKinds(["etcd-peer", "scheduler.conf", "controller-manager.conf"]).sort(),
    ["etcd", "kube-controller-manager", "kube-scheduler"],
  );
});
