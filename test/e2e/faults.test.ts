// Local faults and secrets: a full or read-only disk, concurrent runs, stale locks, corrupt files,
// planted symlinks, and secret values that must appear nowhere. Real CFSSL, real mounts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ALL_OPTIONS } from "../../agent/config/options.js";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { binary, json, runCli, type CliResult } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { startProxy } from "../helpers/proxy.js";

let ca: CfsslCa;
const mounts: string[] = [];
before(async () => {
  ca = await startCfssl();
});
after(async () => {
  for (const m of mounts.reverse()) spawnSync("umount", ["-l", m]);
  await ca?.stop();
});

const PKI = "var/lib/kubelet/pki";

function args(root: string, extra: string[] = [], url = ca.url): string[] {
  const keyFile = join(root, "etc/node-join/ca-auth.key");
  return [
    ...cfsslWorkerJoin(root, { url, pin: ca.pin }, { "ca-auth-key-file": keyFile }),
    ...extra,
  ];
}

function prepare(root: string): string {
  ca.installAuthKey(root);
  return root;
}

/** A root on its own small tmpfs, so it can be filled up or made read-only. */
function tmpfsRoot(size = "2m"): string {
  const root = tempRoot("nj-tmpfs-");
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", root]);
  mounts.push(root);
  return prepare(root);
}

function leftovers(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (/\.node-join-(new|tmp)|journal\.json|\.tmp$/.test(e.name)) out.push(join(d, e.name));
      if (e.isDirectory()) walk(join(d, e.name));
    }
  };
  walk(root);
  return out;
}

test("a full disk: clear error naming the file (exit 6), no partial files, the old set intact, then recovery", async () => {
  const root = tmpfsRoot();
  assert.equal((await runCli(args(root))).code, 0);
  const filler = join(root, "filler");
  spawnSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=4k"], { stdio: "ignore" }); // until ENOSPC
  const before_ = snapshot(root);
  const r = await runCli([...args(root), "--force", "--json"]);
  assert.equal(r.code, 6, r.stderr);
  assert.match(
    json<{ error: string }>(r).error,
    /cannot write \S+: no space left on device \(ENOSPC\)$/,
  );
  assert.deepEqual(
    diffSnapshots(before_, snapshot(root)),
    [],
    "the old set is byte-for-byte intact",
  );
  assert.deepEqual(leftovers(root), []);
  execFileSync("rm", [filler]);
  const again = await runCli([...args(root), "--force"]);
  assert.equal(again.code, 0, again.stderr);
});

test("a read-only root: clear error (exit 6), nothing changed", async () => {
  const root = tmpfsRoot();
  assert.equal((await runCli(args(root))).code, 0);
  execFileSync("mount", ["-o", "remount,ro", root]);
  const before_ = snapshot(root);
  const r = await runCli([...args(root), "--force", "--json"]);
  assert.equal(r.code, 6, r.stderr);
  assert.match(json<{ error: string }>(r).error, /EROFS/);
  assert.deepEqual(diffSnapshots(before_, snapshot(root)), []);
  const rn = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(rn.code, 6, rn.stderr);
  execFileSync("mount", ["-o", "remount,rw", root]);
});

test("ten joins started at once: exactly one does the work, the others exit 7", async () => {
  const root = prepare(tempRoot());
  // The CA answers slowly, so the first run holds the lock while the others start.
  const proxy = await startProxy(ca.url, async (path) => {
    if (path.endsWith("/info")) await new Promise((r) => setTimeout(r, 4000));
    return { type: "forward" };
  });
  try {
    const [cmd, ...pre] = binary();
    const runs = Array.from(
      { length: 10 },
      () =>
        new Promise<number>((resolve) =>
          spawn(cmd!, [...pre, ...args(root, [], proxy.url)], { stdio: "ignore" }).on("exit", (c) =>
            resolve(c ?? 1),
          ),
        ),
    );
    const codes = (await Promise.all(runs)).sort();
    assert.deepEqual(codes, [0, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
    assert.equal(
      readdirSync(join(root, PKI)).filter((n) => /^kubelet-client-\d/.test(n)).length,
      1,
      "one set was installed",
    );
    assert.equal(
      proxy.requests.filter((q) => q.path.endsWith("/authsign")).length,
      2,
      "only one run sent CSRs",
    );
    assert.ok(!existsSync(join(root, "var/lib/node-join/lock")));
  } finally {
    await proxy.close();
  }
});

test("a stale lock from a killed process is taken over", async () => {
  const root = prepare(tempRoot());
  const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
  mkdirSync(join(root, "var/lib/node-join"), { recursive: true });
  writeFileSync(join(root, "var/lib/node-join/lock"), `${dead}\n`);
  const r = await runCli(args(root));
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!existsSync(join(root, "var/lib/node-join/lock")));
  // A live owner is respected.
  const sleeper = spawn("sleep", ["30"]);
  writeFileSync(join(root, "var/lib/node-join/lock"), `${sleeper.pid}\n`);
  await expectFailure(
    [...args(root), "--force"],
    7,
    new RegExp(`another node-join \\(pid ${sleeper.pid}\\) holds the lock`),
    root,
  );
  sleeper.kill();
});

test("a key that does not match its certificate: status reports it, renew repairs it", async () => {
  const root = prepare(tempRoot());
  assert.equal((await runCli(args(root))).code, 0);
  const file = join(root, PKI, readlinkSync(join(root, PKI, "kubelet-client-current.pem")));
  const text = readFileSync(file, "utf8");
  const other = createPrivateKey(
    generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({
      format: "pem",
      type: "sec1",
    }),
  );
  writeFileSync(
    file,
    text.replace(
      /-----BEGIN EC PRIVATE KEY-----[\s\S]*$/,
      other.export({ format: "pem", type: "sec1" }).toString(),
    ),
  );
  const st = json<{ certificates: { name: string; problem?: string }[] }>(
    await runCli(["status", "--root", root, "--json"]),
  );
  assert.equal(
    st.certificates.find((c) => c.name === "kubelet-client")!.problem,
    "key does not match certificate",
  );
  const r = await runCli(["renew", "--root", root, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    json<{ renewed: { kind: string; reason: string }[] }>(r).renewed.map((x) => [x.kind, x.reason]),
    [["kubelet-client", "installed key does not match its certificate"]],
  );
});

test("a symlink planted at a target file is replaced, never followed; a planted directory link is refused", async () => {
  const root = prepare(tempRoot());
  const victim = join(root, "victim");
  writeFileSync(victim, "precious\n");
  mkdirSync(join(root, "etc/kubernetes"), { recursive: true });
  symlinkSync(victim, join(root, "etc/kubernetes/kubelet.conf"));
  const r = await runCli(args(root));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(victim, "utf8"), "precious\n", "the link target was not written");
  assert.ok(
    lstatSync(join(root, "etc/kubernetes/kubelet.conf")).isFile(),
    "kubelet.conf is now a regular file",
  );

  const other = prepare(tempRoot());
  const elsewhere = join(other, "elsewhere");
  mkdirSync(elsewhere);
  mkdirSync(join(other, "var/lib/kubelet"), { recursive: true });
  symlinkSync(elsewhere, join(other, PKI));
  await expectFailure(
    args(other),
    6,
    /refusing to write under .*var\/lib\/kubelet\/pki: it is a symbolic link \(to .*elsewhere\)/,
    other,
  );
  assert.deepEqual(readdirSync(elsewhere), []);
});

test("private keys and the auth key are 0600 and root-owned, no directory is world-writable, and no secret appears anywhere", async () => {
  const root = prepare(tempRoot());
  mkdirSync(join(root, "var/lib/node_exporter/textfile_collector"), { recursive: true });
  const secret = ca.authKeyHex;
  const outputs: CliResult[] = [];
  outputs.push(await runCli([...args(root), "--json"]));
  outputs.push(await runCli([...args(root), "--force"]));
  outputs.push(await runCli(["renew", "--root", root, "--force", "--json"]));
  outputs.push(await runCli(["renew", "--root", root]));
  outputs.push(await runCli(["status", "--root", root]));
  outputs.push(await runCli(["status", "--root", root, "--json"]));
  // failures too: a wrong key (the CA refuses), a bad flag, the key from the environment
  const wrong = prepare(tempRoot());
  writeFileSync(join(wrong, "etc/node-join/ca-auth.key"), "00".repeat(16), { mode: 0o600 });
  outputs.push(await runCli([...args(wrong), "--json"]));
  outputs.push(
    await runCli(
      [
        ...args(tempRoot()).filter((a) => !a.includes("ca-auth.key") && a !== "--ca-auth-key-file"),
        "--json",
      ],
      { env: { NODE_JOIN_CA_AUTH_KEY: secret, NODE_JOIN_DEBUG: "1" } },
    ),
  );
  outputs.push(
    await runCli(["join", "--root", root, "--timeout", "never"], {
      env: { NODE_JOIN_CA_AUTH_KEY: secret },
    }),
  );
  for (const o of outputs) {
    assert.ok(
      !o.stdout.includes(secret) && !o.stderr.includes(secret),
      `secret in output: ${o.stdout}${o.stderr}`,
    );
  }
  assert.equal(outputs[0]!.code, 0);
  const keyFile = join(root, "etc/node-join/ca-auth.key");
  const walk = (d: string): string[] =>
    readdirSync(d, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? [join(d, e.name), ...walk(join(d, e.name))] : [join(d, e.name)],
    );
  for (const p of walk(root)) {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) continue;
    assert.equal(st.uid, 0, `${p} owned by root`);
    if (st.isDirectory()) {
      assert.equal(st.mode & 0o002, 0, `${p} is world-writable`);
      continue;
    }
    const text = readFileSync(p, "utf8");
    if (p !== keyFile) assert.ok(!text.includes(secret), `the auth key appears in ${p}`);
    if (/PRIVATE KEY/.test(text) || p === keyFile)
      assert.equal(st.mode & 0o777, 0o600, `${p} holds a key`);
  }
  // No flag can take a secret: every secret-sounding flag in join's help takes a file (a path
  // option of the settings table) or one of fixed choices (`--auth-key-after-join keep|drop`).
  const help = execFileSync(process.execPath, [
    join(process.cwd(), "dist/node-join.cjs"),
    "join",
    "--help",
  ]).toString();
  const secretish = [
    ...new Set(
      [...help.matchAll(/--([a-z0-9-]*(key|token|password|secret)[a-z0-9-]*)/g)].map((m) => m[1]!),
    ),
  ];
  assert.ok(secretish.length >= 6, `found ${secretish.join(", ")}`);
  for (const f of secretish) {
    const o = ALL_OPTIONS.find((x) => x.flag === f);
    assert.ok(o, `--${f} is in the settings table`);
    assert.ok(
      o.path === true || (o.choices?.length ?? 0) > 0,
      `--${f} must take a file, not the secret`,
    );
  }
});
