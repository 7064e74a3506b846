// join then leave against the real CAs, through the bundle: a worker with CFSSL and with step-ca,
// a control plane with CFSSL; the tree is back to what it was before the join (the static pod
// manifests aside, which leave moves away), also after a leave killed in its transaction.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cfsslControlPlaneJoin, cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { installControlPlaneSecrets, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { REPO, runCli, spawnCollect } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { startStepCa, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";
import { saKeyDir } from "../helpers/sa-keys.js";

let k8s: CfsslCa, fp: CfsslCa, etcdCa: CfsslCa;
let step: StepCaHandle;
let saDir: string;

before(async () => {
  [k8s, fp, etcdCa, step] = await Promise.all([
    startCfssl({ cn: "kubernetes" }),
    startCfssl({ cn: "front-proxy-ca" }),
    startCfssl({ cn: "etcd-ca" }),
    startStepCa(),
  ]);
  saDir = saKeyDir("nj-leave-sa-");
});
after(async () => {
  await Promise.all([k8s, fp, etcdCa, step].map((c) => c?.stop()));
});

/** A root as a kubeadm-installed host has it before the join: the kubelet's and cron's dirs. */
function hostRoot(): string {
  const root = tempRoot("nj-leave-");
  for (const d of ["etc/kubernetes/manifests", "var/lib/kubelet", "etc/cron.d"])
    mkdirSync(join(root, d), { recursive: true });
  return root;
}

/**
 * Joins (with the renewal timer: a cron line under a root without systemd), then leaves: the
 * secret files given under the root (`secrets`, relative) go too, listed; `kept`: how many the
 * listing keeps (a secret outside the root).
 */
async function joinThenLeave(
  root: string,
  joinArgs: string[],
  secrets: string[] = [],
  kept = 0,
): Promise<string[]> {
  const beforeJoin = snapshot(root);
  const j = await runCli(joinArgs);
  assert.equal(j.code, 0, j.stderr);
  const cron = join(root, "etc/cron.d/node-join");
  assert.ok(existsSync(cron), "join installed the renewal cron line");
  const dry = await runCli(["leave", "--root", root, "--dry-run"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(dry.stdout.includes(`\n  would remove ${cron}\n`), dry.stdout);
  for (const f of secrets)
    assert.match(
      dry.stdout,
      new RegExp(`\n {2}would remove ${join(root, f)} \\(.*--keep-secrets keeps it\\)\n`),
    );
  const r = await runCli(["leave", "--root", root, "--yes"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    new RegExp(`^left (worker|control-plane) node \\S+: removed \\d+ file\\(s\\), kept ${kept}\n`),
  );
  // What the join did is undone; the secrets the operator put there for it go with the node.
  const diff = diffSnapshots(beforeJoin, snapshot(root));
  for (const f of secrets) assert.ok(diff.includes(f), `${f} removed`);
  return diff.filter((f) => !secrets.includes(f));
}

test("a worker joined with CFSSL leaves the tree as it was before the join", async () => {
  const root = hostRoot();
  const key = k8s.installAuthKey(root);
  const diff = await joinThenLeave(root, cfsslWorkerJoin(root, k8s, { "ca-auth-key-file": key }), [
    "etc/node-join/ca-auth.key",
  ]);
  assert.deepEqual(diff, []);
});

test("a worker joined with step-ca leaves the tree as it was before the join", async () => {
  const root = hostRoot();
  const workers = step.provisioners.find((p) => p.name === "workers")!;
  const diff = await joinThenLeave(
    root,
    stepWorkerJoin(root, step, {
      "ca-provisioner": "workers",
      "ca-password-file": workers.passwordFile,
    }),
    [],
    // The provisioner password file is the CA's, outside the root: listed as kept, left.
    1,
  );
  assert.deepEqual(diff, []);
  assert.ok(existsSync(workers.passwordFile));
});

test("a control plane joined with CFSSL leaves the tree as it was, its static pod manifests moved away", async () => {
  const root = hostRoot();
  installControlPlaneSecrets(root, { kubernetes: k8s, frontProxy: fp, etcd: etcdCa }, saDir);
  const pods = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"];
  for (const pod of pods)
    writeFileSync(join(root, "etc/kubernetes/manifests", `${pod}.yaml`), `# ${pod}\n`);
  const cas = { kubernetes: k8s, frontProxy: fp, etcd: etcdCa };
  const args = cfsslControlPlaneJoin(root, "cp1", "127.0.0.11", cas);
  const diff = await joinThenLeave(
    root,
    args,
    ["etcd-ca.key", "front-proxy-ca.key", "kubernetes-ca.key"].map((f) => `etc/node-join/${f}`),
  );
  const left = "etc/kubernetes/manifests.node-join-left";
  assert.deepEqual(
    diff,
    [
      ...pods.map((p) => `etc/kubernetes/manifests/${p}.yaml`),
      left,
      ...pods.map((p) => `${left}/${p}.yaml`),
    ].sort(),
  );
  assert.deepEqual(readdirSync(join(root, left)).sort(), pods.map((p) => `${p}.yaml`).sort());
});

test("kill -9 inside leave's transaction: the next leave completes it, and the tree is as before the join", async () => {
  const root = hostRoot();
  const key = k8s.installAuthKey(root);
  const beforeJoin = snapshot(root);
  const j = await runCli(cfsslWorkerJoin(root, k8s, { "ca-auth-key-file": key }));
  assert.equal(j.code, 0, j.stderr);
  const killed = await spawnCollect(process.execPath, [
    "--import",
    "tsx",
    join(REPO, "test/helpers/crash-entry.ts"),
    "remove:3",
    "leave",
    "--root",
    root,
    "--yes",
  ]);
  assert.equal(killed.code, 137, `killed: ${killed.stderr}`);
  assert.ok(existsSync(join(root, "var/lib/node-join/journal.json")), "killed after its commit");
  const r = await runCli(["leave", "--root", root, "--yes"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^node-join: completed an interrupted leave: \d+ file\(s\) removed\n/);
  assert.equal(r.stdout, "nothing to do: node-join has not joined this root, or already left it\n");
  assert.deepEqual(diffSnapshots(beforeJoin, snapshot(root)), []);
});
