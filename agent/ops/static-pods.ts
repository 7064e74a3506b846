// kubeadm's documented way to restart a static pod after its certificates changed: move its
// manifest out of /etc/kubernetes/manifests, wait for the kubelet to notice (fileCheckFrequency,
// 20 s), move it back. A run killed while the manifests are away puts them back next time.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ensureDir, fsyncDir, inspect, renameDurable } from "../store/fsio.js";
import type { Layout } from "../store/layout.js";
import type { Clock } from "../common/clock.js";

export const PAUSED_DIR = "node-join-paused-manifests";

export async function restartStaticPods(
  pods: string[],
  l: Layout,
  waitMs: number,
  clock: Clock,
  log: (s: string) => void,
): Promise<string[]> {
  const manifests = join(l.kubernetesDir, "manifests");
  const paused = join(l.kubernetesDir, PAUSED_DIR);
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
  const paused = join(l.kubernetesDir, PAUSED_DIR);
  let names: string[];
  try {
    names = readdirSync(paused);
  } catch {
    return [];
  }
  const manifests = join(l.kubernetesDir, "manifests");
  for (const n of names) renameDurable(join(paused, n), join(manifests, n));
  if (names.length) fsyncDir(manifests);
  return names;
}
