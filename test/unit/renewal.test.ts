import { test } from "node:test";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { dueness, jitterFraction, renewalDeadline } from "../../agent/pki/deadline.js";
import {
  cronSchedule,
  installTimer,
  nextCronRun,
  renderCron,
  renderService,
  renderTimer,
  renewWritablePaths,
  runTimer,
  timerStatus,
  timerSummary,
  UNSAFE_ENV,
  type TimerEnv,
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

test("the metrics textfile says whether the last run found the clock not set, and by how much", () => {
  const { first, second } = sampleTextfiles();
  assert.match(first, /^node_join_clock_not_set 0$/m);
  assert.doesNotMatch(first, /^node_join_clock_offset_seconds/m);
  assert.match(second, /^# TYPE node_join_clock_not_set gauge$/m);
  assert.match(second, /^node_join_clock_not_set 1$/m);
  assert.match(second, /^node_join_clock_offset_seconds -259200$/m);
});

test("the metrics textfile says per certificate whether renew would re-issue it, and why", () => {
  const { second } = sampleTextfiles();
  assert.deepEqual(
    second.split("\n").filter((l) => l.startsWith("node_join_certificate_renewal_needed")),
    [
      'node_join_certificate_renewal_needed{kind="kubelet-client",file="/var/lib/kubelet/pki/kubelet-client-current.pem",cause="ok"} 0',
      'node_join_certificate_renewal_needed{kind="etcd-server",file="/weird \\"path\\"\\\\x",cause="due"} 1',
      'node_join_certificate_renewal_needed{kind="apiserver",file="/etc/kubernetes/pki/apiserver.crt",cause="missing"} 1',
    ],
  );
  assert.match(second, /^# TYPE node_join_certificate_renewal_needed gauge$/m);
});

test("the metrics textfile has one CA expiry series per CA certificate, labels escaped", () => {
  const { first, second } = sampleTextfiles();
  const pinA = `sha256:${"a1".repeat(32)}`;
  const pinB = `sha256:${"b2".repeat(32)}`;
  const block = [
    "# HELP node_join_ca_expiry_timestamp_seconds NotAfter of each CA certificate the node trusts (Unix time); node-join does not renew CAs.",
    "# TYPE node_join_ca_expiry_timestamp_seconds gauge",
    // the re-issued certificate of the same key and subject: one series, its later expiry
    `node_join_ca_expiry_timestamp_seconds{ca="kubernetes",subject="CN=kubernetes-ca",pin="${pinA}"} 1924992000`,
    `node_join_ca_expiry_timestamp_seconds{ca="kubernetes",subject="CN=kubernetes-ca-2031",pin="${pinB}"} 2082758400`,
    `node_join_ca_expiry_timestamp_seconds{ca="etcd",subject="CN=etcd \\\\\\"ca\\\\\\"\\n2,O=x",pin="${pinA}"} 1874966400`,
  ].join("\n");
  for (const text of [first, second]) assert.ok(text.includes(`\n${block}\n`), text);
});

test("timer units and cron line", () => {
  const svc = renderService(["/usr/bin/node-join"]);
  for (const line of [
    "Type=oneshot",
    "ExecStart=/usr/bin/node-join renew",
    "TimeoutStartSec=30min",
    // Optional ("-"): the operator's proxy variables for the timer (README "Proxy").
    "EnvironmentFile=-/etc/node-join/environment",
    // After the clock's synchronisation too (a board without an RTC boots at 1970), without
    // pulling the passive time-sync.target in (systemd.special(7)).
    "After=network-online.target time-sync.target",
    "Wants=network-online.target",
  ])
    assert.ok(svc.includes(`\n${line}\n`), line);
  assert.doesNotMatch(svc, /^(Wants|Requires)=.*time-(sync|set)\.target/m);
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
      `^${s.minute} ${s.hours[0]},${s.hours[1]} \\* \\* \\* root ulimit -c 0; unset [A-Z_ ]+; if command -v logger >/dev/null 2>&1; then /usr/bin/node-join renew 2>&1 \\| logger -t node-join; else exec /usr/bin/node-join renew; fi$`,
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
    / root ulimit -c 0; unset [A-Z_ ]+; if command -v logger >\/dev\/null 2>&1; then '\/opt\/it'\\''s here\/node-join' renew 2>&1 \| logger -t node-join; else exec '\/opt\/it'\\''s here\/node-join' renew; fi$/,
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

/** A root where systemd runs as PID 1, its systemctl answering as `answer` says. */
function runningSystemd(answer: (cmd: string) => { code: number; output: string }) {
  const calls: string[] = [];
  const env: TimerEnv = {
    layout: layout(tempRoot("nj-unit-live-")),
    systemdRunning: true,
    systemdInstalled: true,
    run: (argv) => {
      calls.push(argv.join(" "));
      return answer(argv.join(" "));
    },
  };
  return { env, calls };
}

test("on a running systemd, install reloads and starts only what changed, and switching schedulers stops the timer", () => {
  let active = false;
  const { env, calls } = runningSystemd((cmd) => {
    if (cmd === "systemctl start node-join-renew.timer") active = true;
    if (cmd === "systemctl stop node-join-renew.timer") active = false;
    if (cmd.startsWith("systemctl is-active")) return { code: active ? 0 : 3, output: "" };
    return { code: 0, output: "" };
  });
  const exec = ["/usr/bin/node-join"];
  const first = installTimer(env, exec, "systemd", "w1");
  assert.deepEqual(
    [first.changed, first.message, calls.splice(0)],
    [
      true,
      "installed, enabled and started node-join-renew.timer",
      ["systemctl daemon-reload", "systemctl start node-join-renew.timer"],
    ],
  );
  const again = installTimer(env, exec, "systemd", "w1");
  assert.deepEqual(
    [again.changed, again.message, calls.splice(0)],
    [
      false,
      "unchanged: node-join-renew.timer is installed, enabled and active",
      ["systemctl is-active --quiet node-join-renew.timer"],
    ],
  );
  const cron = installTimer(env, exec, "cron", "w1");
  assert.deepEqual(cron.removed.length, 3);
  assert.deepEqual(calls.splice(0), [
    "systemctl stop node-join-renew.timer",
    "systemctl daemon-reload",
  ]);
  const back = installTimer(env, exec, "systemd", "w1");
  assert.equal(
    back.message,
    `installed, enabled and started node-join-renew.timer; removed ${env.layout.cronDir}/node-join`,
  );
  assert.deepEqual(calls.splice(0), [
    "systemctl daemon-reload",
    "systemctl start node-join-renew.timer",
  ]);
});

test("timer status on a running systemd: the next run systemd drew, in ISO 8601 UTC; an inactive timer is a problem", () => {
  let active = true;
  const { env } = runningSystemd((cmd) => {
    if (cmd.startsWith("systemctl is-active")) return { code: active ? 0 : 3, output: "" };
    if (cmd.startsWith("systemctl show node-join-renew.timer --property=NextElapseUSecRealtime"))
      return { code: 0, output: active ? "Tue 2026-12-01 12:23:45 UTC" : "" };
    return { code: 0, output: "" };
  });
  installTimer(env, ["/usr/bin/node-join"], "systemd", "w1");
  const now = new Date("2026-12-01T01:00:00Z");
  const st = timerStatus(env, now);
  assert.deepEqual(
    [st.scheduler, st.enabled, st.active, st.nextRun, st.problem],
    ["systemd", true, true, "2026-12-01T12:23:45Z", undefined],
  );
  assert.equal(timerSummary(st), "systemd timer, enabled, active, next run 2026-12-01T12:23:45Z");
  active = false;
  assert.equal(
    timerSummary(timerStatus(env, now)),
    "systemd timer, enabled, inactive, next run none scheduled; node-join-renew.timer not active: run systemctl start node-join-renew.timer",
  );
});

test("a timer that is not there is a problem only where one is wanted", () => {
  const env: TimerEnv = {
    layout: layout(tempRoot("nj-unit-none-")),
    systemdRunning: false,
    systemdInstalled: false,
    run: () => assert.fail("no systemctl without systemd"),
  };
  const now = new Date();
  assert.equal(
    timerSummary(timerStatus(env, now)),
    "none; renew runs only by hand: run node-join timer install",
  );
  assert.equal(timerSummary(timerStatus(env, now, false)), "none");
});

test("the .deb's units: shipped disabled they are no timer; enabled by systemctl they are, and cron replaces them", () => {
  const root = tempRoot("nj-unit-deb-");
  const lib = join(root, "lib/systemd/system");
  mkdirSync(lib, { recursive: true });
  writeFileSync(join(lib, "node-join-renew.service"), renderService(["/usr/bin/node-join"]));
  writeFileSync(join(lib, "node-join-renew.timer"), renderTimer());
  const status = () =>
    runTimer("status", { layout: layout(root), seed: "w1", now: new Date() }).message;
  assert.equal(
    status(),
    "renewal timer: none; renew runs only by hand: run node-join timer install",
  );
  // systemctl enable node-join-renew.timer
  const wants = join(root, "etc/systemd/system/timers.target.wants");
  mkdirSync(wants, { recursive: true });
  symlinkSync("/lib/systemd/system/node-join-renew.timer", join(wants, "node-join-renew.timer"));
  assert.equal(
    status(),
    "renewal timer: systemd timer, enabled, next run after boot (systemd is not running on this root)",
  );
  const cron = runTimer("install", {
    layout: layout(root),
    seed: "w1",
    binary: "/usr/bin/node-join",
    scheduler: "cron",
  });
  assert.deepEqual(
    cron.command === "timer install" && cron.removed,
    [join(wants, "node-join-renew.timer")],
    "disabled; the package's units stay",
  );
  assert.match(status(), /^renewal timer: cron line, enabled, next run at /);
});

test("the cron line's next run: the first of its two times after now, in local time", () => {
  const at = (d: number, h: number, m: number) => new Date(2026, 11, d, h, m);
  assert.deepEqual(nextCronRun(15, [0, 12], at(1, 11, 59)), at(1, 12, 15));
  assert.deepEqual(nextCronRun(15, [0, 12], at(1, 12, 15)), at(2, 0, 15), "not the minute now");
  assert.deepEqual(nextCronRun(15, [0, 12], at(31, 23, 0)), new Date(2027, 0, 1, 0, 15));
});

test("static pods to restart follow the renewed kinds", () => {
  assert.deepEqual(podsForKinds(["kubelet-client"]), []);
  assert.deepEqual(podsForKinds(["apiserver", "front-proxy-client"]), ["kube-apiserver"]);
  assert.deepEqual(
    podsForKinds(["etcd-peer", "scheduler.conf", "controller-manager.conf"]).sort(),
    ["etcd", "kube-controller-manager", "kube-scheduler"],
  );
});
