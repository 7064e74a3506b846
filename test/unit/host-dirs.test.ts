// The host tree as node-join finds it (agent/engine/locked.ts, agent/ops/static-pods.ts,
// agent/config/load.ts), in process on temp roots: the static pod directories are checked like
// every other directory it writes in, and an empty --root names no directory. The rules that hold
// only for a run as root (owner, group/world-writable) are in test/unit/strict-modes.test.ts and,
// through the CLI, test/e2e/hostile-host.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LocalIoError, UsageError } from "../../agent/common/errors.js";
import { loadSettings } from "../../agent/config/load.js";
import { checkWriteTargets } from "../../agent/engine/locked.js";
import { restartStaticPods, restorePausedManifests } from "../../agent/ops/static-pods.js";
import { layout, writeTargets } from "../../agent/store/layout.js";
import { fakeClock } from "../helpers/fake-ca.js";
import { diffSnapshots, snapshot } from "../helpers/fs.js";
import { scratchRoots } from "../helpers/fixture.js";

const { newRoot } = scratchRoots("nj-hostdirs-");

const usage = (re: RegExp) => (err: unknown) =>
  err instanceof UsageError && err.exitCode === 2 && re.test(err.message);

test('--root "" is refused (exit 2): it named the working directory, and a join wrote there', () => {
  assert.throws(() => loadSettings({ root: "" }, {}), usage(/^--root "": an empty path/));
  assert.throws(() => layout(""), usage(/^--root "": an empty path/));
  assert.throws(() => loadSettings({ config: "" }, {}), usage(/^--config "": an empty path/));
});

/** A root whose manifests directory (or paused one) is a link to a directory outside it. */
function linkedStaticPodDir(which: "manifestsDir" | "pausedManifestsDir") {
  const root = newRoot();
  const l = layout(root);
  const outside = newRoot("nj-hostdirs-outside-");
  mkdirSync(l.kubernetesDir, { recursive: true });
  symlinkSync(outside, l[which]);
  return { l, outside };
}

const refusedLink = (dir: string) => (err: unknown) =>
  err instanceof LocalIoError &&
  err.exitCode === 6 &&
  err.message.startsWith(`refusing to write under ${dir}: it is a symbolic link`);

test("the static pod directories are write targets, checked before the lock like the others", () => {
  const l = layout("/r");
  assert.ok(writeTargets(l).includes(l.manifestsDir));
  assert.ok(writeTargets(l).includes(l.pausedManifestsDir));
  for (const which of ["manifestsDir", "pausedManifestsDir"] as const) {
    const { l: linked } = linkedStaticPodDir(which);
    assert.throws(() => checkWriteTargets(linked), refusedLink(linked[which]), which);
  }
});

test("restart-static-pods refuses a symlinked manifests directory: no manifest is moved out of the root", async () => {
  const { l, outside } = linkedStaticPodDir("manifestsDir");
  writeFileSync(join(outside, "kube-apiserver.yaml"), "apiVersion: v1\n");
  const before = snapshot(outside);
  await assert.rejects(
    restartStaticPods(["kube-apiserver"], l, 0, fakeClock(), () => undefined),
    refusedLink(l.manifestsDir),
  );
  assert.deepEqual(diffSnapshots(before, snapshot(outside)), []);
  assert.deepEqual(readdirSync(l.kubernetesDir), ["manifests"], "no paused directory made");
});

test("restart-static-pods refuses a symlinked paused directory: the manifest stays where the kubelet reads it", async () => {
  const { l, outside } = linkedStaticPodDir("pausedManifestsDir");
  mkdirSync(l.manifestsDir);
  writeFileSync(join(l.manifestsDir, "etcd.yaml"), "apiVersion: v1\n");
  await assert.rejects(
    restartStaticPods(["etcd"], l, 0, fakeClock(), () => undefined),
    refusedLink(l.pausedManifestsDir),
  );
  assert.equal(readFileSync(join(l.manifestsDir, "etcd.yaml"), "utf8"), "apiVersion: v1\n");
  assert.deepEqual(readdirSync(outside), []);
});

test("recovery of paused manifests refuses a symlinked manifests directory instead of moving files out", () => {
  const root = newRoot();
  const l = layout(root);
  const outside = newRoot("nj-hostdirs-outside-");
  mkdirSync(l.pausedManifestsDir, { recursive: true });
  writeFileSync(join(l.pausedManifestsDir, "etcd.yaml"), "apiVersion: v1\n");
  symlinkSync(outside, l.manifestsDir);
  assert.throws(() => restorePausedManifests(l), refusedLink(l.manifestsDir));
  assert.deepEqual(readdirSync(outside), []);
  assert.deepEqual(readdirSync(l.pausedManifestsDir), ["etcd.yaml"]);
});

test("restart-static-pods refuses a pod name that is a path", async () => {
  const l = layout(newRoot());
  await assert.rejects(
    restartStaticPods(["../../../etc/passwd"], l, 0, fakeClock(), () => undefined),
    usage(/unknown static pod "..\/..\/..\/etc\/passwd" \(known: /),
  );
});
