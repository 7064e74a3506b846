// The hostname is the host's to set: a discovered name that is not a valid node name is refused
// before anything is requested (exit 2, naming it and --node-name), so it never reaches a CN, a
// SAN or the persisted config. The hostname is set in a UTS namespace of its own (unshare), as
// root; the CA is a real CFSSL.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { binary } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";

let ca: CfsslCa;
before(async () => {
  assert.equal(
    process.getuid?.(),
    0,
    "this test sets the hostname in a UTS namespace: run it as root",
  );
  ca = await startCfssl();
});
after(async () => ca?.stop());

/** node-join with `hostname` as the host's name (unshare --uts); join's flags, no --node-name. */
function joinAs(hostname: string, root: string, extra: Record<string, string | undefined> = {}) {
  const args = cfsslWorkerJoin(root, ca, {
    "node-name": undefined,
    "ca-auth-key-file": ca.installAuthKey(root),
    ...extra,
  });
  // The name reaches the kernel as an argument, never through a shell.
  // /proc rather than hostname(1), which refuses such names itself; the kernel takes any bytes.
  const script = 'printf %s "$1" > /proc/sys/kernel/hostname && shift && exec "$@"';
  return spawnSync("unshare", ["--uts", "sh", "-c", script, "sh", hostname, ...binary(), ...args], {
    encoding: "utf8",
    env: { PATH: process.env.PATH },
  });
}

for (const bad of ["w2 $(id)", "a/../../x", "Under_Score", "-x"]) {
  test(`hostname ${JSON.stringify(bad)}: join refuses it (exit 2) before asking the CA, naming it and --node-name`, () => {
    const root = tempRoot("nj-hostname-");
    ca.installAuthKey(root);
    const signs = ca.signRequests();
    const snap = snapshot(root);
    const r = joinAs(bad, root);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr,
      `node-join: error: hostname ${JSON.stringify(bad)} gives no valid node name (a lower-case DNS subdomain): give one with --node-name\n`,
    );
    assert.equal(ca.signRequests(), signs, "nothing was requested");
    assert.deepEqual(diffSnapshots(snap, snapshot(root)), [], "nothing was written");
  });
}

test("a valid hostname is the node name; --node-name overrides an invalid one", () => {
  const ok = tempRoot("nj-hostname-ok-");
  const r = joinAs("Worker-7.lab", ok);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^joined worker node worker-7: /);
  const named = tempRoot("nj-hostname-named-");
  const n = joinAs("w2 $(id)", named, { "node-name": "w2" });
  assert.equal(n.status, 0, n.stderr);
  assert.match(n.stdout, /^joined worker node w2: /);
});
