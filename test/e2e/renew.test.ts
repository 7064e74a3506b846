// Renewal against a real CFSSL with short-lived profiles, run as separate processes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { DEFAULT_PROFILES, startCfssl, useCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { binary, json, REPO, runCli, spawnCollect } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { opensslInfo } from "../helpers/openssl.js";
import { checkMetrics } from "../helpers/promtool.js";

// "short" is valid one hour; "brief" a minute or so (CFSSL backdates NotBefore by 5 minutes).
const ca = useCfssl({ profiles: { ...DEFAULT_PROFILES, brief: { expiry: "6m" } } });

const PKI = "var/lib/kubelet/pki";
const CRASH_ENTRY = join(REPO, "test/helpers/crash-entry.ts");
const TEXTFILE = "var/lib/node_exporter/textfile_collector/node_join.prom";

/**
 * A worker joined with short-lived certificates, a hook that records its environment, and a
 * textfile dir.
 */
async function joinedRoot(profile = "short", extra: string[] = []): Promise<string> {
  const root = tempRoot("nj-renew-");
  mkdirSync(join(root, "var/lib/node_exporter/textfile_collector"), { recursive: true });
  const keyFile = ca.installAuthKey(root);
  const r = await runCli([
    ...cfsslWorkerJoin(root, ca, {
      "ca-auth-key-file": keyFile,
      "client-profile": profile,
      "serving-profile": profile,
    }),
    ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const hook = join(root, "hook.sh");
  writeFileSync(
    hook,
    `#!/bin/sh\necho "renewed=$NODE_JOIN_RENEWED root=$NODE_JOIN_ROOT args=$*" >> "${root}/hook.log"`,
  );
  chmodSync(hook, 0o755);
  appendFileSync(
    join(root, "etc/node-join/config.yaml"),
    `hooks:\n  postRenew:\n    - ["${hook}", "one arg with spaces"]\n`,
  );
  return root;
}

interface SetState {
  client: string;
  server: string;
  clientSerial: string;
  serverSerial: string;
}

function currentSet(root: string): SetState {
  const pem = (p: string) => readFileSync(join(root, PKI, `${p}-current.pem`), "utf8");
  const serial = (p: string) => {
    const text = pem(p);
    return (
      opensslInfo(text.slice(0, text.indexOf("-----END CERTIFICATE-----") + 26)).cn +
      ":" +
      /-----BEGIN CERTIFICATE-----\n([^\n]+)/.exec(text)![1]
    );
  };
  return {
    client: readlinkSync(join(root, PKI, "kubelet-client-current.pem")),
    server: readlinkSync(join(root, PKI, "kubelet-server-current.pem")),
    clientSerial: serial("kubelet-client"),
    serverSerial: serial("kubelet-server"),
  };
}

const renew = (
  root: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
  timeoutMs?: number,
) => runCli(["renew", "--root", root, ...args], { env, ...(timeoutMs ? { timeoutMs } : {}) });

test("renew: nothing due; --before 2h renews with new serials and keys; hook runs; nothing due again", async () => {
  const root = await joinedRoot();
  const before0 = snapshot(root);
  const old = currentSet(root);
  const oldKey = readFileSync(join(root, PKI, "kubelet-client-current.pem"), "utf8").split(
    "-----END CERTIFICATE-----",
  )[1];

  const idle = await renew(root, ["--json"]);
  assert.equal(idle.code, 0, idle.stderr);
  const idleOut = json<{ renewed: unknown[]; nextDeadline: string; message: string }>(idle);
  assert.deepEqual(idleOut.renewed, []);
  assert.match(
    idleOut.message,
    /^nothing to renew; next renewal: kubelet-(client|server) at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
  );
  const deadline = new Date(idleOut.nextDeadline).getTime();
  const notAfter = Date.now() + 3600_000;
  assert.ok(
    deadline > Date.now() && deadline < notAfter,
    "the deadline lies within the 1h lifetime",
  );
  assert.ok(!existsSync(join(root, "hook.log")), "no hook when nothing was renewed");
  const changedByIdle = diffSnapshots(before0, snapshot(root));
  assert.deepEqual(changedByIdle, [TEXTFILE], "an idle renew only refreshes the textfile");

  const r = await renew(root, ["--before", "2h", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = json<{
    renewed: { kind: string; reason: string; serial: string; expired: boolean }[];
    message: string;
  }>(r);
  assert.deepEqual(
    out.renewed.map((x) => x.kind),
    ["kubelet-client", "kubelet-server"],
  );
  assert.match(out.message, /^renewed 2: kubelet-client, kubelet-server$/);
  assert.ok(
    out.renewed.every(
      // the "short" profile's certificates live 1h (and CFSSL's 5 minutes of backdating)
      (x) =>
        x.reason === "--before 2h is at least its whole lifetime (1h): due on every run" &&
        !x.expired,
    ),
  );
  const now = currentSet(root);
  assert.notEqual(now.client, old.client, "symlink swapped to a new timestamped file");
  assert.notEqual(now.clientSerial, old.clientSerial);
  assert.notEqual(now.serverSerial, old.serverSerial);
  const newKey = readFileSync(join(root, PKI, "kubelet-client-current.pem"), "utf8").split(
    "-----END CERTIFICATE-----",
  )[1];
  assert.notEqual(newKey, oldKey, "a fresh key");
  assert.ok(
    existsSync(join(root, PKI, old.client)) && existsSync(join(root, PKI, old.server)),
    "the previous files are kept",
  );
  assert.equal(
    readFileSync(join(root, "hook.log"), "utf8"),
    `renewed=kubelet-client,kubelet-server root=${root} args=one arg with spaces\n`,
  );

  const again = await renew(root);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^nothing to renew; next renewal: kubelet-(client|server) at /);
  assert.equal(
    readFileSync(join(root, "hook.log"), "utf8").split("\n").length,
    2,
    "the hook ran once",
  );

  const prom = readFileSync(join(root, TEXTFILE), "utf8");
  const check = checkMetrics(prom);
  assert.equal(check.code, 0, check.output);
  assert.match(prom, /^node_join_last_run_success\{command="renew"\} 1$/m);
  assert.match(prom, /^node_join_last_renewal_timestamp_seconds \d+$/m);
  assert.match(
    prom,
    /^node_join_certificate_renewal_deadline_timestamp_seconds\{kind="kubelet-server",file="\/var\/lib\/kubelet\/pki\/kubelet-server-current.pem"\} \d+$/m,
  );
});

test("renew keeps the previous 3 timestamped kubelet files; reuseKey keeps the key", async () => {
  const root = await joinedRoot();
  for (let i = 0; i < 5; i++) assert.equal((await renew(root, ["--force"])).code, 0);
  const files = readdirSync(join(root, PKI)).filter((n) => /^kubelet-client-\d/.test(n));
  assert.equal(files.length, 4, `current + 3 previous: ${files.join(" ")}`);
  appendFileSync(join(root, "etc/node-join/config.yaml"), "renew:\n  reuseKey: true\n");
  const key = () =>
    readFileSync(join(root, PKI, "kubelet-client-current.pem"), "utf8")
      .split("-----END CERTIFICATE-----")
      .pop();
  const k0 = key();
  const s0 = currentSet(root).clientSerial;
  assert.equal((await renew(root, ["--force"])).code, 0);
  assert.equal(key(), k0);
  assert.notEqual(currentSet(root).clientSerial, s0);
});

/** Points a joined root's config at a CFSSL that was started and stopped: nothing answers there. */
async function pointAtStoppedCa(root: string): Promise<CfsslCa> {
  const down = await startCfssl();
  await down.stop();
  const cfg = join(root, "etc/node-join/config.yaml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace(ca.url, down.url).replace(ca.pin, down.pin));
  return down;
}

test("renew with the CA down exits 3 naming the CA and changes nothing", async () => {
  const root = await joinedRoot();
  const down = await pointAtStoppedCa(root);
  const snap = snapshot(root);
  const r = await renew(root, ["--before", "2h", "--json"], { NODE_JOIN_TIMEOUT: "2s" });
  assert.equal(r.code, 3, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `node-join: error: CA kubernetes \\(cfssl ${down.url.replace(/\./g, "\\.")}\\) unreachable`,
    ),
  );
  const changed = diffSnapshots(snap, snapshot(root));
  assert.deepEqual(changed, [TEXTFILE], "only the textfile records the failure");
  assert.match(
    readFileSync(join(root, TEXTFILE), "utf8"),
    /^node_join_last_run_success\{command="renew"\} 0$/m,
  );
});

test("renew --timeout gives up on a stopped CA after about that long (exit 3)", async () => {
  const root = await joinedRoot();
  const down = await pointAtStoppedCa(root);
  const started = Date.now();
  // Without --timeout renew would retry for the default 5 minutes, past this test's limit.
  const r = await renew(root, ["--force", "--timeout", "3s"], {}, 60_000);
  const elapsed = Date.now() - started;
  assert.equal(r.code, 3, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `^node-join: error: CA kubernetes \\(cfssl ${down.url.replace(/\./g, "\\.")}\\) unreachable`,
      "m",
    ),
  );
  assert.ok(elapsed >= 3000 && elapsed < 20_000, `gave up after ${elapsed} ms`);
});

test("two renews at once: one works, the other exits 7; nothing torn", async () => {
  const root = await joinedRoot();
  // The first run's hook holds the lock long enough for the second to find it taken.
  const hook = join(root, "slow-hook.sh");
  writeFileSync(hook, `#!/bin/sh\ntouch "${root}/hook-started"\nsleep 2\n`);
  chmodSync(hook, 0o755);
  const cfg = join(root, "etc/node-join/config.yaml");
  writeFileSync(
    cfg,
    readFileSync(cfg, "utf8").replace(
      /hooks:[\s\S]*$/,
      `hooks:\n  postRenew:\n    - ["${hook}"]\n`,
    ),
  );
  const [cmd, ...pre] = binary();
  const first = new Promise<number>((resolve) =>
    spawn(cmd!, [...pre, "renew", "--root", root, "--force"], { stdio: "ignore" }).on("exit", (c) =>
      resolve(c ?? 1),
    ),
  );
  while (!existsSync(join(root, "hook-started"))) await new Promise((r) => setTimeout(r, 50));
  const second = await renew(root, ["--force", "--json"]);
  assert.equal(second.code, 7, second.stderr);
  assert.match(
    json<{ error: string }>(second).error,
    /another node-join \(pid \d+\) holds the lock .*var\/lib\/node-join\/lock/,
  );
  assert.equal(await first, 0);
  const set = currentSet(root);
  assert.ok(existsSync(join(root, PKI, set.client)) && existsSync(join(root, PKI, set.server)));
  assert.ok(!existsSync(join(root, "var/lib/node-join/lock")), "the lock is released");
});

for (const step of ["stage", "journal", "move:0", "move:1", "move:2", "done"]) {
  test(`kill -9 at install step "${step}": after restart the set is entirely old or entirely new`, async () => {
    const root = await joinedRoot();
    const old = currentSet(root);
    // The agent's own CLI, killed by its crash-point seam: the bundle and the binary have no such
    // seam.
    const killed = await spawnCollect(process.execPath, [
      "--import",
      "tsx",
      CRASH_ENTRY,
      step,
      "renew",
      "--root",
      root,
      "--force",
    ]);
    assert.equal(killed.code, 137, `killed at ${step}: ${killed.stderr}`);
    // The restart: the next run recovers first (roll forward a journalled install, drop stages).
    const restart = await renew(root);
    assert.equal(restart.code, 0, restart.stderr);
    const now = currentSet(root);
    const clientNew = now.clientSerial !== old.clientSerial;
    const serverNew = now.serverSerial !== old.serverSerial;
    assert.equal(clientNew, serverNew, `mixed set after a crash at ${step}`);
    const expectNew = step !== "stage";
    assert.equal(
      clientNew,
      expectNew,
      `crash at ${step} should leave the ${expectNew ? "new" : "old"} set`,
    );
    const leftovers = execFind(root, ".node-join-");
    assert.deepEqual(leftovers, [], "temp and staged files are cleaned up");
    assert.ok(!existsSync(join(root, "var/lib/node-join/journal.json")));
    const st = JSON.parse(readFileSync(join(root, "var/lib/node-join/state.json"), "utf8")) as {
      certificates: Record<string, { serial: string }>;
    };
    assert.equal(Object.keys(st.certificates).length, 2);
    const next = await renew(root, ["--force"]);
    assert.equal(next.code, 0, next.stderr);
    assert.notEqual(currentSet(root).clientSerial, now.clientSerial, "the next renew completes");
  });
}

function execFind(root: string, marker: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.name.includes(marker)) out.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

test("a changed node IP renews the serving certificate at once", async () => {
  const root = await joinedRoot();
  const cfg = join(root, "etc/node-join/config.yaml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace("10.0.0.21", "10.0.0.22"));
  const r = await renew(root, ["--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = json<{ renewed: { kind: string; reason: string }[] }>(r);
  assert.deepEqual(
    out.renewed.map((x) => x.kind),
    ["kubelet-server"],
  );
  assert.match(out.renewed[0]!.reason, /SANs lack 10\.0\.0\.22/);
});

test("renew repairs a missing or corrupt certificate", async () => {
  const root = await joinedRoot();
  const target = join(root, PKI, readlinkSync(join(root, PKI, "kubelet-server-current.pem")));
  writeFileSync(target, readFileSync(target, "utf8").slice(0, 200));
  rmSync(join(root, PKI, readlinkSync(join(root, PKI, "kubelet-client-current.pem"))));
  const st = await runCli(["status", "--root", root, "--json"]);
  const probs = json<{ certificates: { name: string; problem?: string }[] }>(st).certificates.map(
    (c) => [c.name, c.problem],
  );
  assert.match(String(probs[0]![1]), /dangling symlink/);
  assert.equal(
    probs[1]![1],
    "unreadable (kubelet-server-current.pem holds a truncated PEM certificate)",
    "the truncated file is reported as an unreadable certificate, not as a missing key",
  );
  assert.equal(st.code, 8, "status says something needs attention");
  const r = await renew(root, ["--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    json<{ renewed: { kind: string }[] }>(r).renewed.map((x) => x.kind),
    ["kubelet-client", "kubelet-server"],
  );
  const after = await runCli(["status", "--root", root, "--json"]);
  assert.ok(
    json<{ certificates: { problem?: string }[] }>(after).certificates.every((c) => !c.problem),
  );
});

test("an expired certificate is renewed the same way and the output says it had expired", async () => {
  const root = await joinedRoot("brief");
  const text = readFileSync(join(root, PKI, "kubelet-client-current.pem"), "utf8");
  const notAfter = new Date(/notAfter=(.*)/.exec(execOpenssl(text))![1]!).getTime();
  // The configured profile stays "brief"; renew with the 1h profile so the new one is valid.
  const cfg = join(root, "etc/node-join/config.yaml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace(/Profile: brief/g, "Profile: short"));
  await new Promise((r) => setTimeout(r, Math.max(0, notAfter - Date.now() + 1500)));
  const r = await renew(root, ["--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = json<{
    renewed: { kind: string; expired: boolean; reason: string }[];
    message: string;
  }>(r);
  assert.ok(
    out.renewed.length === 2 && out.renewed.every((x) => x.expired && /expired at/.test(x.reason)),
  );
  assert.match(out.message, /\(kubelet-client, kubelet-server had expired\)/);
});

function execOpenssl(pem: string): string {
  return execFileSync("openssl", ["x509", "-noout", "-enddate"], { input: pem }).toString();
}
