// The renewal timer (systemd units or cron fallback), join's default install, and the control-plane
// static pod restart hook.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { binary, json, runCli } from "../helpers/cli.js";
import { diffSnapshots, snapshot, systemdRoot, tempRoot } from "../helpers/fs.js";

let ca: CfsslCa;
before(async () => {
  ca = await startCfssl();
});
after(async () => {
  await ca?.stop();
});

/** What the units run by default: this very binary (or node and the bundle), before `renew`. */
const exec = () => [...binary()].join(" ");

test("timer install writes units that pass systemd-analyze verify and enables the timer; remove undoes it", async () => {
  const root = systemdRoot("nj-timer-");
  const r = await runCli(["timer", "install", "--root", root, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = json<{ scheduler: string; enabled: boolean; started: boolean; message: string }>(r);
  assert.equal(out.scheduler, "systemd");
  assert.equal(out.started, false);
  assert.match(out.message, /systemd is not running on this root: it starts at next boot/);
  const dir = join(root, "etc/systemd/system");
  const service = readFileSync(join(dir, "node-join-renew.service"), "utf8");
  const timer = readFileSync(join(dir, "node-join-renew.timer"), "utf8");
  assert.match(service, /^Type=oneshot$/m);
  assert.match(
    service,
    new RegExp(`^ExecStart=${exec().replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} renew$`, "m"),
  );
  assert.match(service, /^After=network-online\.target$/m);
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
    /^([0-5]?\d) ([0-9]|1[01]),(1[2-9]|2[0-3]) \* \* \* root ulimit -c 0; unset [A-Z_ ]+; exec \/usr\/bin\/node-join renew >\/dev\/null 2>&1$/m,
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
  assert.match(a.stdout, /installed .*etc\/cron\.d\/node-join/);
  assert.ok(existsSync(join(withTimer, "etc/cron.d/node-join")));
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
