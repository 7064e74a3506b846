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
  const moved = parkManifests(pods, l);
  if (moved.length === 0) return [];
  log(
    `stopped static pods ${moved.join(", ")}; waiting ${Math.round(waitMs / 1000)}s for the kubelet`,
  );
  await clock.sleep(waitMs);
  restorePausedManifests(l);
  return moved.map((f) => f.replace(/\.yaml$/, ""));
}

/** The manifests of these static pods that are there, as file names. */
export function manifestsOf(pods: readonly string[], l: Layout): string[] {
  return pods
    .map((pod) => `${pod}.yaml`)
    .filter((file) => inspect(join(l.manifestsDir, file)).kind === "file");
}

/**
 * Moves the pods' manifests into the paused directory, where the kubelet no longer runs them and
 * the next run's recovery puts them back (restorePausedManifests); returns the files moved.
 */
export function parkManifests(pods: readonly string[], l: Layout): string[] {
  checkDirs(l);
  const moved = manifestsOf(pods, l);
  if (moved.length === 0) return [];
  ensureDir(l.pausedManifestsDir, 0o700);
  for (const file of moved)
    renameDurable(join(l.manifestsDir, file), join(l.pausedManifestsDir, file));
  fsyncDir(l.manifestsDir);
  return moved;
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
