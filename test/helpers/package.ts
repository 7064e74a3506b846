// Makes sure dist/ holds the single binaries and .deb packages of the current build (packaging is
// slow: packaging/package.mjs --if-changed reuses dist/ when it was made from these very dist/sea
// parts).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./cli.js";

export const DIST = join(REPO, "dist");
export const QEMU = ["/usr/bin/qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"];
export const binPath = (arch: "x64" | "arm64") => join(DIST, `node-join-linux-${arch}`);

function mustRun(cmd: string, args: string[], timeoutMs: number): void {
  const r = spawnSync(cmd, args, {
    cwd: REPO,
    stdio: ["ignore", "inherit", "inherit"],
    timeout: timeoutMs,
  });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}`);
}

export function ensureBuilt(): void {
  if (!existsSync(join(DIST, "node-join.cjs")))
    mustRun("npm", ["run", "--silent", "build"], 300_000);
}

export function ensurePackaged(): void {
  ensureBuilt();
  mustRun(process.execPath, [join(REPO, "packaging/package.mjs"), "--if-changed"], 30 * 60_000);
}

export function debPath(version: string, debArch: "amd64" | "arm64"): string {
  return join(DIST, `node-join_${version}_${debArch}.deb`);
}

export function ensureDebs(version: string): void {
  ensurePackaged();
  // The package holds the binary, what the bundle renders (units, completions, man page) and the
  // alerting rules.
  const stale = (["amd64", "arm64"] as const).some((a) => {
    const deb = debPath(version, a);
    if (!existsSync(deb)) return true;
    const inputs = [
      binPath(a === "amd64" ? "x64" : "arm64"),
      join(DIST, "node-join.cjs"),
      join(REPO, "packaging/deb.mjs"),
      join(REPO, "packaging/prometheus/node-join.rules.yml"),
    ];
    // SHA256SUMS rewritten by package.mjs has lost the .debs' lines: deb.mjs adds them back.
    const sums = readFileSync(join(DIST, "SHA256SUMS"), "utf8");
    if (!sums.includes(`  node-join_${version}_${a}.deb\n`)) return true;
    return inputs.some((f) => statSync(deb).mtimeMs < statSync(f).mtimeMs);
  });
  if (stale) mustRun(process.execPath, [join(REPO, "packaging/deb.mjs")], 10 * 60_000);
}

export function ensureQemu(): void {
  mustRun("bash", [join(REPO, "scripts/qemu-deps.sh")], 600_000);
}
