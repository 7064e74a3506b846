// renew.authKey: drop (--auth-key-after-join drop) as a user runs it, in process against fake CAs:
// join deletes the CFSSL auth key file once it succeeded and says so, a renewal with nothing due
// does not miss it, one that must sign says it needs the key back (exit 2), and status shows each
// CA's renewal path. The key is dropped under join's lock: no other run sees one without the other.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs, { existsSync, readFileSync, rmSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { join } from "node:path";
import { LockedError } from "../../agent/common/errors.js";
import { acquireLock } from "../../agent/store/lock.js";
import { cfsslKeyNode } from "../helpers/joined.js";

const setup = cfsslKeyNode;

// Read back from the config under --root, a file missing there is named as the config writes it.
const droppedError = (keyFile: string) =>
  `node-join: error: CA kubernetes (cfssl http://ca.invalid:8888): the auth key was dropped after join (renew.authKey: drop); put it back at ${keyFile} (--ca-auth-key-file, config cas.kubernetes.authKeyFile) or re-enrol with node-join join\n`;

test("join --auth-key-after-join drop deletes the auth key once joined, says so, and persists the choice", async () => {
  const n = await setup("--auth-key-after-join", "drop");
  const r = await n.join();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(existsSync(n.keyFile), false, "the key is gone");
  const config = readFileSync(join(n.root, "etc/node-join/config.yaml"), "utf8");
  assert.match(config, /^renew:\n {2}authKey: drop$/m);
  assert.match(
    config,
    /authKeyFile: \/etc\/node-join\/ca-auth.key/,
    "its path stays in the config",
  );
});

test("join's output names the dropped file; --dry-run only says it would", async () => {
  const n = await setup("--auth-key-after-join", "drop");
  const dry = await n.join("--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(
    dry.stdout.endsWith(
      `  would drop the CFSSL auth key file ${n.keyFile} (renew.authKey: drop)\n`,
    ),
    dry.stdout,
  );
  assert.equal(existsSync(n.keyFile), true, "a dry run deletes nothing");
  const r = await n.join();
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.split("\n").slice(-2), [
    `dropped the CFSSL auth key file ${n.keyFile} (renew.authKey: drop): a renewal that must sign needs it back, or a new join`,
    "",
  ]);
  const j = JSON.parse((await n.run("status", "--json")).stdout) as { renewalPaths: unknown };
  assert.deepEqual(j.renewalPaths, [
    { ca: "kubernetes", type: "cfssl", path: "auth key dropped: re-enrol" },
  ]);
});

test("after the drop: renew with nothing due is fine; one that must sign needs the key back (exit 2); with it back it renews", async () => {
  const n = await setup("--auth-key-after-join", "drop");
  assert.equal((await n.join()).code, 0);
  const idle = await n.run("renew");
  assert.equal(idle.code, 0, idle.stderr);
  assert.match(idle.stdout, /^nothing to renew; next renewal: kubelet-\w+ at \S+Z\n$/);

  const forced = await n.run("renew", "--force");
  assert.equal(forced.code, 2);
  assert.equal(forced.stderr, droppedError("/etc/node-join/ca-auth.key"));
  assert.equal(forced.stdout, "");

  n.putBack();
  const back = await n.run("renew", "--force");
  assert.equal(back.code, 0, back.stderr);
  assert.match(back.stdout, /^renewed 2: kubelet-client, kubelet-server\n/);
  assert.equal(existsSync(n.keyFile), true, "renew never drops the key: only join does");
});

test("with the default (keep) the key stays, and a missing one is the generic missing-file error", async () => {
  const n = await setup();
  const r = await n.join();
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /drop/);
  assert.equal(existsSync(n.keyFile), true);
  const wide = await n.run("status", "--wide");
  assert.match(
    wide.stdout,
    /\nrenewal paths:\n {2}kubernetes CA \(cfssl\): auth key \/etc\/node-join\/ca-auth\.key\nidentity: file \(a copy of the disk carries 1 secret file: \/etc\/node-join\/ca-auth\.key\)\nrenewal timer: /,
  );
  rmSync(n.keyFile);
  const forced = await n.run("renew", "--force");
  assert.equal(forced.code, 2);
  assert.equal(
    forced.stderr,
    "node-join: error: CA kubernetes: CA auth key file /etc/node-join/ca-auth.key does not exist (--ca-auth-key-file, config cas.kubernetes.authKeyFile)\n",
  );
});

test("after the drop: join again with nothing due is fine (the key is missed only to sign)", async () => {
  const n = await setup("--auth-key-after-join", "drop");
  assert.equal((await n.join()).code, 0);
  const again = await n.join();
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /dropped/, "nothing left to drop");
});

/**
 * Another run's attempt at the lock, made at this instant: "locked" when a run holds it (the
 * LockedError of exit 7 every second node-join gets), "free" when it could have run.
 */
function secondRun(lockFile: string): "locked" | "free" {
  try {
    acquireLock(lockFile).release();
    return "free";
  } catch (err) {
    if (err instanceof LockedError && err.exitCode === 7) return "locked";
    throw err;
  }
}

test("the auth key is dropped under join's lock: a second run sees the lock or the key gone, never the node joined with its key and no lock", async () => {
  const n = await setup("--auth-key-after-join", "drop");
  const lockFile = join(n.root, "var/lib/node-join/lock");
  // While the first join signs (before its commit) a second one meets its lock, and the key is
  // still there: nothing of the first join is in place yet.
  const signing = n.cas.kubernetes;
  const sign = signing.sign.bind(signing);
  const during: { second: Awaited<ReturnType<typeof n.join>>; keyThere: boolean }[] = [];
  signing.sign = async (req) => {
    if (during.length === 0)
      during.push({ second: await n.join(), keyThere: existsSync(n.keyFile) });
    return sign(req);
  };
  // The instant the key file is removed: whether a run could take the lock then.
  const atDrop: ("locked" | "free")[] = [];
  const unlink = fs.unlinkSync;
  fs.unlinkSync = (path: fs.PathLike) => {
    if (path === n.keyFile) atDrop.push(secondRun(lockFile));
    unlink(path);
  };
  syncBuiltinESMExports();
  let first;
  try {
    first = await n.join();
  } finally {
    fs.unlinkSync = unlink;
    syncBuiltinESMExports();
    signing.sign = sign;
  }
  assert.equal(first.code, 0, first.stderr);
  assert.equal(during.length, 1, "the second join ran while the first was signing");
  assert.equal(during[0]!.second.code, 7, during[0]!.second.stderr);
  assert.match(during[0]!.second.stderr, /^node-join: error: .*\(pid \d+\)/);
  assert.equal(during[0]!.keyThere, true, "the key stays until the first join has committed");
  assert.deepEqual(atDrop, ["locked"], "the key file was removed once, with the lock held");
  assert.equal(existsSync(n.keyFile), false);
  assert.equal(existsSync(lockFile), false, "the lock is released after the drop");
  assert.equal(secondRun(lockFile), "free");
  const after = await n.join();
  assert.equal(after.code, 0, after.stderr);
  assert.doesNotMatch(after.stdout, /dropped/, "the next join finds the key gone");
});

test("leave lists the auth key the config names and removes it with the node; --keep-secrets keeps it", async () => {
  const n = await setup();
  assert.equal((await n.join()).code, 0);
  const note = "(kubernetes CA auth key file; --keep-secrets keeps it)";
  const dry = await n.run("leave", "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(dry.stdout.includes(`\n  would remove ${n.keyFile} ${note}\n`), dry.stdout);
  assert.match(dry.stdout, /^dry run: would leave worker node w1: remove 10 file\(s\), keep 0\n/);
  const json = JSON.parse((await n.run("leave", "--dry-run", "--json")).stdout) as {
    secrets: { path: string; what: string }[];
  };
  assert.deepEqual(json.secrets, [{ path: n.keyFile, what: "kubernetes CA auth key file" }]);
  assert.equal(existsSync(n.keyFile), true, "a dry run changes nothing");

  const kept = await n.run("leave", "--yes", "--keep-secrets");
  assert.equal(kept.code, 0, kept.stderr);
  assert.ok(
    kept.stdout.includes(
      `\n  kept ${n.keyFile} (kubernetes CA auth key file: a secret, kept by --keep-secrets)\n`,
    ),
    kept.stdout,
  );
  assert.equal(existsSync(n.keyFile), true);

  const other = await setup();
  assert.equal((await other.join()).code, 0);
  const left = await other.run("leave", "--yes");
  assert.equal(left.code, 0, left.stderr);
  assert.match(left.stdout, /^left worker node w1: removed 10 file\(s\), kept 0\n/);
  assert.ok(left.stdout.includes(`\n  removed ${other.keyFile} ${note}\n`), left.stdout);
  assert.equal(existsSync(other.keyFile), false);
});
