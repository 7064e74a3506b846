// promtool from Debian's prometheus package (unpacked into .cache by scripts/deps.sh).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./cli.js";

export function promtool(): string {
  const local = join(REPO, ".cache/prometheus/usr/bin/promtool");
  if (existsSync(local)) return local;
  try {
    execFileSync("sh", ["-c", "command -v promtool"], { stdio: "ignore" });
    return "promtool";
  } catch {
    throw new Error(
      "promtool not found: scripts/deps.sh unpacks it from Debian's prometheus package; run it first",
    );
  }
}

/** promtool check metrics: exit status and what it said (lint problems included). */
export function checkMetrics(text: string): { code: number; output: string } {
  const r = spawnSync(promtool(), ["check", "metrics"], { input: text, encoding: "utf8" });
  return { code: r.status ?? 1, output: `${r.stdout}${r.stderr}` };
}
