// The renewal timer (systemd units or cron fallback), join's default install, and the control-plane
// static pod restart hook.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:net";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { useCfssl } from "../helpers/cfssl.js";
import { binary, json, runCli, spawnCollect } from "../helpers/cli.js";
import { diffSnapshots, snapshot, systemdRoot, tempRoot } from "../helpers/fs.js";
import { systemdWords } from "../helpers/integrations.js";
import { forward, freePort } from "../helpers/listening.js";

const ca = useCfssl();

/** What the units run by default: this very binary (or node and the bundle), before `renew`. */
const exec = () => [...binary()].join(" ");

test("timer install writes units that pass systemd-analyze verify and enables the timer; remove undoes it", async () => {
  const root = systemdRoot("nj-timer-");
  const r = await runCli(["timer", "install", "--root", root, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = json<{ scheduler: string; enabled: boolean; started: boolean; message: string }>(r);
  assert.equal(out.scheduler, "systemd");
  assert.equal(out.started, false);
  assert.ok(out.message.endsWith(`; ${boot(root)}`), out.message);
  assert.doesNotMatch(out.message, /daemon-reload/);
  const dir = join(root, "etc/systemd/system");
  const service = readFileSync(join(dir, "node-join-renew.service"), "utf8");
  const timer = readFileSync(join(dir, "node-join-renew.timer"), "utf8");
  assert.match(service, /^Type=oneshot$/m);
  assert.match(
    service,
    new RegExp(`^ExecStart=${exec().replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} renew$`, "m"),
  );
  assert.match(service, /^After=network-online\.target time-sync\.target$/m);
  assert.match(service, /^Wants=network-online\.target$/m);
  assert.match(timer, /^OnCalendar=\*-\*-\* 00,12:00:00$/m);
  assert.match(timer, /^RandomizedDelaySec=1h$/m);
  assert.match(timer, /^Persistent=true$/m);
  assert.equal(
    readlinkSync(join(dir, "timers.target.wants/node-join-renew.timer")),
    "/etc/systemd/system/node-join-renew.timer",
  );

  const verify = spawnSync(
    "systemd-analyze",
    ["verify", join(dir, "node-join-renew.timer"), join(dir, "node-join-renew.service")],
    { encoding: "utf8" },
  );
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(
    `${verify.stdout}${verify.stderr}`.trim(),
    "",
    "systemd-analyze has nothing to say (it only warns on parse errors)",
  );

  const snap = snapshot(root);
  assert.equal((await runCli(["timer", "install", "--root", root])).code, 0);
  assert.deepEqual(diffSnapshots(snap, snapshot(root)), [], "installing again changes nothing");

  const st = json<{ installed: boolean; enabled: boolean; scheduler: string }>(
    await runCli(["timer", "status", "--root", root, "--json"]),
  );
  assert.deepEqual([st.installed, st.enabled, st.scheduler], [true, true, "systemd"]);
  const rm = await runCli(["timer", "remove", "--root", root, "--json"]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(json<{ removed: string[] }>(rm).removed.length, 3);
  assert.ok(
    !existsSync(join(dir, "node-join-renew.service")) &&
      !existsSync(join(dir, "timers.target.wants/node-join-renew.timer")),
  );
  assert.equal(
    json<{ installed: boolean }>(await runCli(["timer", "status", "--root", root, "--json"]))
      .installed,
    false,
  );
});

test("a first-boot join with the CA down leaves node-join-join.service; status says join pending (12); the unit's ExecStart, run as systemd would once the CA is up, joins and removes it", async () => {
  const root = systemdRoot("nj-join-retry-");
  const keyFile = join(root, "etc/node-join/ca-auth.key");
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  writeFileSync(keyFile, `${ca.authKeyHex}\n`, { mode: 0o600 });
  // The CA's address, but nothing answers there yet: the network or the CA is not up at boot.
  const port = await freePort();
  const down = { url: `http://127.0.0.1:${port}`, pin: ca.pin };
  const flags = ["--ca-auth-key-file", keyFile, "--timeout", "1s", "--no-timer"];
  const first = await runCli([...cfsslWorkerJoin(root, down), ...flags]);
  assert.equal(first.code, 3, first.stderr);
  assert.match(
    first.stderr,
    /join pending: node-join-join\.service installed, enabled: it runs at next boot/,
  );
  assert.ok(!existsSync(join(root, "etc/kubernetes")), "nothing of the node written");
  const dir = join(root, "etc/systemd/system");
  const unit = readFileSync(join(dir, "node-join-join.service"), "utf8");
  assert.equal(
    readlinkSync(join(dir, "multi-user.target.wants/node-join-join.service")),
    "/etc/systemd/system/node-join-join.service",
  );
  for (const line of [
    "After=network-online.target time-sync.target",
    "Wants=network-online.target",
    "Restart=on-failure",
    "RestartPreventExitStatus=1 2 4 5 6",
    "WantedBy=multi-user.target",
  ])
    assert.ok(unit.split("\n").includes(line), `${line}\n${unit}`);
  assert.ok(!unit.includes(ca.authKeyHex), "no secret in the unit");
  const settings = readFileSync(join(root, "var/lib/node-join/join-pending.yaml"), "utf8");
  assert.ok(!settings.includes(ca.authKeyHex), "no secret in the retry's settings");
  assert.equal(lstatSync(join(root, "var/lib/node-join/join-pending.yaml")).mode & 0o777, 0o600);
  const verify = spawnSync("systemd-analyze", ["verify", join(dir, "node-join-join.service")], {
    encoding: "utf8",
  });
  assert.equal(verify.status, 0, verify.stderr);

  const st = await runCli(["status", "--root", root]);
  assert.equal(st.code, 12, st.stderr);
  assert.match(
    st.stderr,
    /join pending: .*127\.0\.0\.1:\d+.* \(exit 3, 1 attempt\(s\) since .*\); node-join-join\.service tries again on its own/,
  );

  // The retry, still without a CA: counted, the unit unchanged.
  const argv = systemdWords(
    unit
      .split("\n")
      .find((l) => l.startsWith("ExecStart="))!
      .slice(10),
  );
  assert.deepEqual(argv.slice(-3), ["join", "--config", "/var/lib/node-join/join-pending.yaml"]);
  // As the booted host runs it, here under --root: the config's path is the host's, below root.
  const hostArgs = argv.slice(binary().length, -1);
  const retry = (...more: string[]) =>
    runCli([...hostArgs, join(root, argv.at(-1)!), "--root", root, ...more]);
  const snap = snapshot(join(root, "etc"));
  assert.equal((await retry()).code, 3);
  assert.deepEqual(diffSnapshots(snap, snapshot(join(root, "etc"))), []);
  assert.match((await runCli(["status", "--root", root])).stderr, /exit 3, 2 attempt\(s\)/);

  // The CA comes up at that address: the next retry joins and removes the retry.
  const stop = await forward(port, ca.url);
  try {
    // The 1s the first join was given (to fail fast on a CA that is down) is too tight for a
    // whole join on a loaded machine: a flag overrides the pending settings.
    const ok = await retry("--timeout", "30s");
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /joined: removed the join retry/);
  } finally {
    await stop();
  }
  for (const gone of [
    "etc/systemd/system/node-join-join.service",
    "etc/systemd/system/multi-user.target.wants/node-join-join.service",
    "var/lib/node-join/join-pending.yaml",
    "var/lib/node-join/join-pending.json",
  ])
    assert.ok(!existsSync(join(root, gone)), gone);
  assert.ok(existsSync(join(root, "etc/kubernetes/kubelet.conf")));
  const joined = await runCli(["status", "--root", root]);
  assert.equal(joined.code, 0, joined.stdout + joined.stderr);
});

test("a join refused for a reason a person must fix (wrong pin) installs no retry; one pending stops retrying", async () => {
  const root = systemdRoot("nj-join-refused-");
  const keyFile = join(root, "ca-auth.key");
  writeFileSync(keyFile, `${ca.authKeyHex}\n`, { mode: 0o600 });
  const wrongPin = { url: ca.url, pin: `sha256:${"0".repeat(64)}` };
  const flags = ["--ca-auth-key-file", keyFile, "--no-timer"];
  const r = await runCli([...cfsslWorkerJoin(root, wrongPin), ...flags]);
  assert.equal(r.code, 5, r.stderr);
  assert.doesNotMatch(r.stderr, /join pending/);
  assert.ok(!existsSync(join(root, "etc/systemd/system/node-join-join.service")));
  assert.ok(!existsSync(join(root, "var/lib/node-join/join-pending.json")));
  assert.equal((await runCli(["status", "--root", root])).code, 9);

  // Pending after a CA that was down, then refused: the unit goes, status says to fix it.
  const port = await freePort();
  const down = { url: `http://127.0.0.1:${port}`, pin: ca.pin };
  assert.equal(
    (await runCli([...cfsslWorkerJoin(root, down), ...flags, "--timeout", "1s"])).code,
    3,
  );
  assert.ok(existsSync(join(root, "etc/systemd/system/node-join-join.service")));
  const refused = await runCli([...cfsslWorkerJoin(root, wrongPin), ...flags]);
  assert.equal(refused.code, 5, refused.stderr);
  assert.match(refused.stderr, /join pending: not retried \(exit 5 needs a person\); removed /);
  assert.ok(!existsSync(join(root, "etc/systemd/system/node-join-join.service")));
  assert.ok(
    !existsSync(join(root, "etc/systemd/system/multi-user.target.wants/node-join-join.service")),
  );
  const st = await runCli(["status", "--root", root]);
  assert.equal(st.code, 12);
  assert.match(
    st.stderr,
    /join pending: .*\(exit 5, 2 attempt\(s\).*not retried: fix that, then run node-join join/,
  );
});

test("join --no-retry-unit (config retryUnit.enabled: false): a first join with the CA down leaves no retry, only its exit code", async () => {
  const port = await freePort();
  const down = { url: `http://127.0.0.1:${port}`, pin: ca.pin };
  const noRetry = (root: string) => [
    ...cfsslWorkerJoin(root, down),
    ...["--ca-auth-key-file", ca.installAuthKey(root), "--timeout", "1s", "--no-timer"],
  ];
  const assertNoRetry = (root: string) => {
    for (const f of [
      "etc/systemd/system/node-join-join.service",
      "etc/systemd/system/multi-user.target.wants/node-join-join.service",
      "var/lib/node-join/join-pending.yaml",
      "var/lib/node-join/join-pending.json",
    ])
      assert.ok(!existsSync(join(root, f)), f);
  };
  const byFlag = systemdRoot("nj-no-retry-");
  const r = await runCli([...noRetry(byFlag), "--no-retry-unit"]);
  assert.equal(r.code, 3, r.stderr);
  assert.doesNotMatch(r.stderr, /join pending/);
  assertNoRetry(byFlag);
  assert.equal((await runCli(["status", "--root", byFlag])).code, 9, "not joined, not pending");
  // The same from the node's own config.yaml, put in place before the first join.
  const byConfig = systemdRoot("nj-no-retry-");
  const config = join(byConfig, "etc/node-join/config.yaml");
  mkdirSync(join(byConfig, "etc/node-join"), { recursive: true });
  writeFileSync(config, "retryUnit:\n  enabled: false\n", { mode: 0o600 });
  const c = await runCli([...noRetry(byConfig), "--config", config]);
  assert.equal(c.code, 3, c.stderr);
  assertNoRetry(byConfig);
  // Control: without either, the same join leaves the retry.
  const control = systemdRoot("nj-no-retry-");
  assert.equal((await runCli(noRetry(control))).code, 3);
  assert.ok(existsSync(join(control, "etc/systemd/system/node-join-join.service")));
});

test("a first join on a node whose config.yaml was put in place before (cloud-init write_files) still leaves the retry; status says join pending", async () => {
  const root = systemdRoot("nj-retry-config-");
  const port = await freePort();
  const down = { url: `http://127.0.0.1:${port}`, pin: ca.pin };
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  writeFileSync(join(root, "etc/node-join/config.yaml"), "role: worker\n", { mode: 0o644 });
  const flags = ["--ca-auth-key-file", ca.installAuthKey(root), "--timeout", "1s", "--no-timer"];
  const r = await runCli([...cfsslWorkerJoin(root, down), ...flags]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /join pending: node-join-join\.service installed/);
  assert.ok(existsSync(join(root, "etc/systemd/system/node-join-join.service")));
  const st = await runCli(["status", "--root", root]);
  assert.equal(st.code, 12, st.stderr);
  assert.match(st.stderr, /join pending/);
});

test("without systemd the fallback is a cron.d line with a per-node minute", async () => {
  const root = tempRoot("nj-cron-");
  const r = await runCli([
    "timer",
    "install",
    "--root",
    root,
    "--binary",
    "/usr/bin/node-join",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(json<{ scheduler: string }>(r).scheduler, "cron");
  const cron = readFileSync(join(root, "etc/cron.d/node-join"), "utf8");
  assert.match(
    cron,
    /^([0-5]?\d) ([0-9]|1[01]),(1[2-9]|2[0-3]) \* \* \* root ulimit -c 0; unset [A-Z_ ]+; if command -v logger >\/dev\/null 2>&1; then \/usr\/bin\/node-join renew 2>&1 \| logger -t node-join; else exec \/usr\/bin\/node-join renew; fi$/m,
  );
  const [, h1, h2] = /^\d+ (\d+),(\d+) /m.exec(cron)!;
  assert.equal(Number(h2) - Number(h1), 12, "twice a day, twelve hours apart");
});

test("join installs the timer by default; --no-timer skips it and is remembered", async () => {
  const withTimer = tempRoot();
  const args = (root: string) => cfsslWorkerJoin(root, ca); // the auth key from the environment
  const env = { NODE_JOIN_CA_AUTH_KEY: ca.authKeyHex };
  const a = await runCli(args(withTimer), { env });
  assert.equal(a.code, 0, a.stderr);
  const cron = join(withTimer, "etc/cron.d/node-join");
  assert.equal(a.stdout.split("\n").at(-2), `installed ${cron}`);
  assert.ok(existsSync(cron));
  // a repeated join changes nothing, and says nothing about the timer
  const node = /^joined worker node (\S+):/.exec(a.stdout)![1]!;
  const repeat = await runCli(args(withTimer), { env });
  assert.deepEqual(
    [repeat.code, repeat.stdout],
    [0, `nothing to do: worker node ${node} already has valid certificates matching its config\n`],
    repeat.stderr,
  );
  assert.equal(
    json<{ timer: { changed: boolean } }>(await runCli([...args(withTimer), "--json"], { env }))
      .timer.changed,
    false,
  );
  const without = tempRoot();
  const b = await runCli([...args(without), "--no-timer"], { env });
  assert.equal(b.code, 0, b.stderr);
  assert.ok(!existsSync(join(without, "etc/cron.d/node-join")));
  assert.match(
    readFileSync(join(without, "etc/node-join/config.yaml"), "utf8"),
    /timer:\n\s+enabled: false/,
  );
  const again = await runCli(["join", "--root", without], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.ok(!existsSync(join(without, "etc/cron.d/node-join")), "the persisted choice holds");

  // status: no timer is a problem on a joined node, unless its config says timer.enabled: false
  const timerOf = async (root: string) =>
    json<{ timer: { scheduler: string; problem?: string } }>(
      await runCli(["status", "--root", root, "--json"]),
    ).timer;
  assert.deepEqual(await timerOf(without), {
    scheduler: "none",
    installed: false,
    enabled: false,
    files: [],
  });
  assert.equal((await runCli(["timer", "remove", "--root", withTimer])).code, 0);
  assert.deepEqual(await timerOf(withTimer), {
    scheduler: "none",
    installed: false,
    enabled: false,
    files: [],
    problem: "renew runs only by hand: run node-join timer install",
  });
  // status: the timer's line, and its problem among what needs attention (exit 8)
  const text = await runCli(["status", "--root", withTimer]);
  assert.equal(text.code, 8, text.stderr);
  assert.deepEqual(text.stdout.split("\n").slice(-5), [
    "renewal timer: none",
    "",
    "needs attention:",
    "  renewal timer: renew runs only by hand: run node-join timer install",
    "",
  ]);
});

const UNIT_DIR = "etc/systemd/system";
/** What the systemd scheduler installs, in the order install and remove name them. */
const systemdFiles = (root: string) => [
  join(root, UNIT_DIR, "timers.target.wants/node-join-renew.timer"),
  join(root, UNIT_DIR, "node-join-renew.timer"),
  join(root, UNIT_DIR, "node-join-renew.service"),
];
/**
 * Under --root the host's systemd is not the target's: what the target does, and how to check it
 * from here (not the host's daemon-reload and start).
 */
const boot = (root: string) =>
  `systemd is not running on this root: the timer is enabled in ${root} and starts when that system boots (nothing to run on this host; systemctl --root ${root} is-enabled node-join-renew.timer checks it)`;

/** A file or symlink is there (existsSync follows the enable link to the host's /etc). */
const present = (f: string) => {
  try {
    lstatSync(f);
    return true;
  } catch {
    return false;
  }
};

/** A root with systemd installed (not running) and node-join at /usr/bin/node-join. */
function rootWithBinary(): string {
  const root = systemdRoot("nj-switch-");
  mkdirSync(join(root, "usr/bin"), { recursive: true });
  writeFileSync(join(root, "usr/bin/node-join"), "#!/bin/sh\n", { mode: 0o755 });
  return root;
}

test("choosing the other scheduler replaces the installed one; installing again says unchanged", async () => {
  const root = rootWithBinary();
  const cron = join(root, "etc/cron.d/node-join");
  const units = systemdFiles(root);
  const install = (...more: string[]) =>
    runCli(["timer", "install", "--root", root, "--binary", "/usr/bin/node-join", ...more]);
  const status = () => runCli(["timer", "status", "--root", root]);
  const out = (r: { code: number; stdout: string; stderr: string }) => [r.code, r.stdout, r.stderr];

  assert.deepEqual(out(await install()), [
    0,
    `installed and enabled node-join-renew.timer; ${boot(root)}\n`,
    "",
  ]);
  assert.deepEqual(out(await install("--scheduler", "cron")), [
    0,
    `installed ${cron}; removed ${units.join(", ")}\n`,
    "",
  ]);
  assert.deepEqual(units.filter(present), [], "the units and the enable link are gone");
  const [, minute, h1, h2] = /^(\d+) (\d+),(\d+) /m.exec(readFileSync(cron, "utf8"))!;
  const hhmm = (h: string) => `${h.padStart(2, "0")}:${minute!.padStart(2, "0")}`;
  assert.deepEqual(out(await status()), [
    0,
    `renewal timer: cron line, enabled, next run at ${hhmm(h1!)} or ${hhmm(h2!)} local time\n`,
    "",
  ]);
  const snap = snapshot(root);
  assert.deepEqual(out(await install("--scheduler", "cron")), [
    0,
    `unchanged: ${cron} is installed\n`,
    "",
  ]);
  assert.deepEqual(diffSnapshots(snap, snapshot(root)), []);

  assert.deepEqual(out(await install()), [
    0,
    `installed and enabled node-join-renew.timer; removed ${cron}; ${boot(root)}\n`,
    "",
  ]);
  assert.ok(!existsSync(cron) && units.every(present), "exactly the units");
  assert.deepEqual(out(await install()), [
    0,
    `unchanged: node-join-renew.timer is installed and enabled; ${boot(root)}\n`,
    "",
  ]);
  assert.deepEqual(out(await status()), [
    0,
    "renewal timer: systemd timer, enabled, next run after boot (systemd is not running on this root)\n",
    "",
  ]);
  assert.deepEqual(out(await runCli(["timer", "remove", "--root", root])), [
    0,
    `removed ${units.join(", ")}\n`,
    "",
  ]);
  assert.deepEqual(out(await runCli(["timer", "remove", "--root", root])), [
    0,
    "unchanged: no renewal timer was installed\n",
    "",
  ]);
  assert.deepEqual(out(await status()), [
    0,
    "renewal timer: none; renew runs only by hand: run node-join timer install\n",
    "",
  ]);
});

test("timer status and status report a systemd timer and a cron line installed side by side", async () => {
  const root = rootWithBinary();
  const install = ["timer", "install", "--root", root, "--binary", "/usr/bin/node-join"];
  assert.equal((await runCli(install)).code, 0);
  // as an older node-join (or a hand) left it: a second scheduler of the same renewal
  mkdirSync(join(root, "etc/cron.d"));
  writeFileSync(
    join(root, "etc/cron.d/node-join"),
    "17 5,17 * * * root /usr/bin/node-join renew\n",
  );
  const line =
    "renewal timer: both! systemd timer and cron line, enabled, next run after boot (systemd is not running on this root); renew runs twice: run node-join timer install --scheduler systemd or --scheduler cron to keep one";
  const st = await runCli(["timer", "status", "--root", root]);
  // timer status reports; the command that alerts (exit status) is node-join status
  assert.deepEqual([st.code, st.stdout, st.stderr], [0, `${line}\n`, ""]);
  const stJson = json<{ scheduler: string; files: string[]; problem: string }>(
    await runCli(["timer", "status", "--root", root, "--json"]),
  );
  assert.deepEqual(
    [stJson.scheduler, stJson.files, stJson.problem],
    [
      "both",
      [...systemdFiles(root), join(root, "etc/cron.d/node-join")],
      "renew runs twice: run node-join timer install --scheduler systemd or --scheduler cron to keep one",
    ],
  );
  // status (--role: this root was never joined) shows the timer's line and lists its problem
  // among what needs attention, exit 8
  const status = await runCli(["status", "--root", root, "--role", "worker"]);
  assert.equal(status.code, 8, status.stderr);
  const out = status.stdout.split("\n");
  assert.ok(
    out.includes(
      "renewal timer: both! systemd timer and cron line, enabled, next run after boot (systemd is not running on this root)",
    ),
    status.stdout,
  );
  assert.equal(
    out.at(-3),
    "  renewal timer: renew runs twice: run node-join timer install --scheduler systemd or --scheduler cron to keep one",
  );
  const sj = json<{ timer: { scheduler: string; problem?: string } }>(
    await runCli(["status", "--root", root, "--role", "worker", "--json"]),
  );
  assert.deepEqual(sj.timer.scheduler, "both");
  assert.match(sj.timer.problem!, /^renew runs twice: /);
  // installing one scheduler ends it
  const fixed = await runCli([...install, "--scheduler", "systemd"]);
  assert.equal(
    fixed.stdout,
    `installed and enabled node-join-renew.timer; removed ${join(root, "etc/cron.d/node-join")}; ${boot(root)}\n`,
  );
});

test("the cron line sends renew's output, failures included, to syslog through logger; without logger cron gets it", async () => {
  const root = tempRoot("nj-cron-log-");
  const r = await runCli(["timer", "install", "--root", root, "--scheduler", "cron"]);
  assert.equal(r.code, 0, r.stderr);
  const line = readFileSync(join(root, "etc/cron.d/node-join"), "utf8")
    .split("\n")
    .find((l) => / root /.test(l))!;
  const command = line.slice(line.indexOf(" root ") + " root ".length);
  const renew = `${exec()} renew`;
  assert.ok(
    command.endsWith(
      `; if command -v logger >/dev/null 2>&1; then ${renew} 2>&1 | logger -t node-join; else exec ${renew}; fi`,
    ),
    command,
  );
  // A renew that fails (a root never joined) through the line as cron's /bin/sh runs it; the real
  // logger writes to a socket this test listens on instead of /dev/log.
  const unjoined = tempRoot("nj-unjoined-");
  const sock = join(tempRoot("nj-syslog-"), "log.sock");
  const piped = command.replace(
    ` renew 2>&1 | logger -t node-join;`,
    ` renew --root ${unjoined} 2>&1 | logger -t node-join --socket ${sock};`,
  );
  assert.notEqual(piped, command);
  let syslog = "";
  const server = createServer((c) => c.on("data", (d) => (syslog += d)));
  await new Promise<void>((ok) => server.listen(sock, ok));
  try {
    const sh = await spawnCollect("/bin/sh", ["-c", piped], { env: { PATH: "/usr/bin:/bin" } });
    assert.deepEqual([sh.code, sh.stdout, sh.stderr], [0, "", ""], "all output went to logger");
    for (let i = 0; i < 100 && !syslog.endsWith("\n"); i++)
      await new Promise((ok) => setTimeout(ok, 20));
  } finally {
    server.close();
  }
  const error = `node-join: error: no config at ${unjoined}/etc/node-join/config.yaml: run node-join join first (renew needs the settings join persisted)`;
  assert.match(syslog, /^<13>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d node-join: /, syslog);
  assert.equal(syslog.slice(syslog.indexOf(" node-join: ") + " node-join: ".length), `${error}\n`);

  // where logger is missing, renew's output is the job's own, which cron mails (or logs)
  const bare = command.replace(`exec ${renew};`, `exec ${renew} --root ${unjoined};`);
  assert.notEqual(bare, command);
  const noLogger = await spawnCollect("/bin/sh", ["-c", bare], {
    env: { PATH: tempRoot("nj-empty-path-") },
  });
  assert.deepEqual([noLogger.code, noLogger.stdout, noLogger.stderr], [2, "", `${error}\n`]);
});

test("timer install --root refuses a root that does not exist and creates nothing", async () => {
  const typo = join(tempRoot("nj-typo-"), "targte");
  for (const action of ["install", "remove", "status"]) {
    const r = await runCli(["timer", action, "--root", typo]);
    assert.deepEqual(
      [r.code, r.stdout, r.stderr],
      [2, "", `node-join: error: --root ${typo}: no such directory\n`],
      action,
    );
  }
  assert.ok(!existsSync(typo), "no directory tree made up");
});

test("--binary must be absolute, and under --root it is the path the booted host sees", async () => {
  const root = systemdRoot("nj-binary-");
  const before = snapshot(root);
  const rel = await runCli(["timer", "install", "--root", root, "--binary", "bin/node-join"]);
  assert.deepEqual(
    [rel.code, rel.stdout, rel.stderr],
    [2, "", 'node-join: error: --binary "bin/node-join": must be an absolute path\n'],
  );
  assert.deepEqual(diffSnapshots(before, snapshot(root)), [], "nothing written");

  const service = join(root, UNIT_DIR, "node-join-renew.service");
  const execStart = () => /^ExecStart=(.*)$/m.exec(readFileSync(service, "utf8"))![1];
  // given as the file under the root: the unit names it as the booted host will
  const under = await runCli([
    "timer",
    "install",
    "--root",
    root,
    "--binary",
    join(root, "usr/bin/node-join"),
  ]);
  assert.equal(under.code, 0, under.stderr);
  assert.equal(execStart(), "/usr/bin/node-join renew");
  // not there yet (an image build may add it later): a warning, not an error
  assert.equal(
    under.stderr,
    `node-join: warning: --binary /usr/bin/node-join: no executable file at ${root}/usr/bin/node-join; the renewal timer fails until node-join is installed there\n`,
  );
  mkdirSync(join(root, "usr/bin"), { recursive: true });
  writeFileSync(join(root, "usr/bin/node-join"), "#!/bin/sh\n", { mode: 0o755 });
  // given as the booted host names it: the same unit, checked under the root
  const host = await runCli(["timer", "install", "--root", root, "--binary", "/usr/bin/node-join"]);
  assert.deepEqual(
    [host.code, host.stdout, host.stderr],
    [0, `unchanged: node-join-renew.timer is installed and enabled; ${boot(root)}\n`, ""],
  );
  assert.equal(execStart(), "/usr/bin/node-join renew");
});

test("timer --help says what each subcommand does", async () => {
  const r = await runCli(["timer", "--help"]);
  assert.equal(r.code, 0, r.stderr);
  const help = r.stdout.replace(/\s+/g, " "); // however the terminal wraps it
  for (const line of [
    "install [options] install the renewal timer: systemd units, or a cron line where there is no systemd (either replaces the other)",
    "remove [options] remove the renewal timer: the systemd units and the cron line",
    "status [options] show whether the renewal timer is installed, enabled and when it runs next",
  ])
    assert.ok(help.includes(line), `${line}\n${r.stdout}`);
});

function manifestsRoot(): string {
  const root = tempRoot("nj-pods-");
  const dir = join(root, "etc/kubernetes/manifests");
  mkdirSync(dir, { recursive: true });
  for (const pod of ["kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager"])
    writeFileSync(join(dir, `${pod}.yaml`), `# ${pod}\n`);
  return root;
}

test("restart-static-pods moves the manifests of the renewed kinds away for the wait, then back", async () => {
  const root = manifestsRoot();
  const dir = join(root, "etc/kubernetes/manifests");
  const [cmd, ...pre] = binary();
  const child = spawn(cmd!, [...pre, "restart-static-pods", "--root", root, "--wait", "2s"], {
    env: { ...process.env, NODE_JOIN_RENEWED: "apiserver,etcd-peer,kubelet-client" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const t0 = Date.now();
  while (existsSync(join(dir, "etcd.yaml")) && Date.now() - t0 < 5000)
    await new Promise((r) => setTimeout(r, 50));
  assert.ok(
    !existsSync(join(dir, "kube-apiserver.yaml")) && !existsSync(join(dir, "etcd.yaml")),
    "the renewed pods' manifests are away",
  );
  assert.ok(existsSync(join(dir, "kube-scheduler.yaml")), "other pods are left alone");
  const code = await new Promise<number>((r) => child.on("exit", (c) => r(c ?? 1)));
  assert.equal(code, 0);
  assert.match(out, /restarted static pods: (kube-apiserver, etcd|etcd, kube-apiserver)/);
  for (const pod of ["kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager"])
    assert.ok(existsSync(join(dir, `${pod}.yaml`)), pod);
});

test("manifests a killed restart left away are put back by the next run", async () => {
  const root = manifestsRoot();
  const dir = join(root, "etc/kubernetes/manifests");
  const [cmd, ...pre] = binary();
  const child = spawn(
    cmd!,
    [...pre, "restart-static-pods", "--root", root, "--wait", "30s", "kube-apiserver"],
    { stdio: "ignore" },
  );
  while (existsSync(join(dir, "kube-apiserver.yaml"))) await new Promise((r) => setTimeout(r, 50));
  child.kill("SIGKILL");
  await new Promise((r) => child.on("exit", r));
  assert.ok(!existsSync(join(dir, "kube-apiserver.yaml")));
  // any writing command recovers first; a join without settings fails after recovering
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  writeFileSync(
    join(root, "etc/node-join/config.yaml"),
    `apiServer: https://10.0.0.1:6443\nnodeName: cp1\nips: [10.0.0.11]\ncas:\n  kubernetes:\n    url: ${ca.url}\n    certHashes: [${ca.pin}]\n`,
  );
  const r = await runCli(["renew", "--root", root]);
  assert.match(r.stderr, /1 static pod manifest\(s\) restored/);
  assert.ok(existsSync(join(dir, "kube-apiserver.yaml")), "back in place");
});
