// kubeadm's documented way to restart a static pod after its certificates changed: move its
// manifest out of /etc/kubernetes/manifests, wait for the kubelet to notice (fileCheckFrequency,
// 20 s), move it back. A run killed while the manifests are away puts them back next time.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ensureDir, fsyncDir, inspect, renameDurable } from "../store/fsio.js";
import { PAUSED_MANIFESTS, type Layout } from "../store/layout.js";
import { assertSafeDirs } from "../store/strict-modes.js";
import type { Clock } from "../common/clock.js";
import { UsageError } from "../common/errors.js";
import { STATIC_PODS } from "../pki/certs.js";

export const PAUSED_DIR = PAUSED_MANIFESTS;

/**
 * The manifests and paused directories are real directories that only root may change: a link
 * planted at either would move a manifest out of the root, and a directory another user may write
 * in lets that user swap what the kubelet runs. restart-static-pods runs as a hook, outside the
 * run's own check, so it checks them itself.
 */
function checkDirs(l: Layout): void {
  assertSafeDirs(l.root, l.manifestsDir);
  assertSafeDirs(l.root, l.pausedManifestsDir);
}

export async function restartStaticPods(
  pods: string[],
  l: Layout,
  waitMs: number,
  clock: Clock,
  log: (s: string) => void,
): Promise<string[]> {
  // Only the pods node-join issues certificates for: any other name is a typo, and restarting
  // "none" of them would hide it.
  for (const pod of pods)
    if (!STATIC_PODS.includes(pod))
      throw new UsageError(
        `unknown static pod ${JSON.stringify(pod)} (known: ${STATIC_PODS.join(", ")})`,
      );
  checkDirs(l);
  const manifests = l.manifestsDir;
  const paused = l.pausedManifestsDir;
  const moved: string[] = [];
  ensureDir(paused, 0o700);
  for (const pod of pods) {
    const file = `${pod}.yaml`;
    if (inspect(join(manifests, file)).kind !== "file") continue;
    renameDurable(join(manifests, file), join(paused, file));
    moved.push(file);
  }
  if (moved.length === 0) return [];
  fsyncDir(manifests);
  log(
    `stopped static pods ${moved.join(", ")}; waiting ${Math.round(waitMs / 1000)}s for the kubelet`,
  );
  await clock.sleep(waitMs);
  restorePausedManifests(l);
  return moved.map((f) => f.replace(/\.yaml$/, ""));
}

/** Moves back manifests a killed run left paused. */
export function restorePausedManifests(l: Layout): string[] {
  const paused = l.pausedManifestsDir;
  let names: string[];
  try {
    names = readdirSync(paused);
  } catch {
    return [];
  }
  checkDirs(l);
  const manifests = l.manifestsDir;
  for (const n of names) renameDurable(join(paused, n), join(manifests, n));
  if (names.length) fsyncDir(manifests);
  return names;
}
