#!/usr/bin/env node
// Builds dist/node-join_<version>_amd64.deb and _arm64.deb (dpkg-deb) from the single binaries that
// packaging/package.mjs made: the binary in /usr/bin, the renewal units in /lib/systemd/system
// shipped
// disabled (`node-join timer install`, or `systemctl enable --now node-join-renew.timer`, turns
// them
// on), an example config in /etc/node-join/, the bash and zsh completions and the man page. The
// units, completions and man page are rendered by the agent itself, so the package and the binary
// can never disagree.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { withDebs } from "./sums.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const DIST = join(ROOT, "dist");
/** @type {{ version: string, license: string, description: string }} */
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const ARCHES = { x64: "amd64", arm64: "arm64" };

/**
 * Runs a command and returns its stdout; throws with its output when it fails.
 * @param {string} cmd
 * @param {string[]} args
 */
function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr || r.stdout || r.error}`);
  return r.stdout;
}

/**
 * Writes the renewal units, rendered by the agent itself, into the package tree.
 * @param {string} stage the package's root directory
 */
function units(stage) {
  const tmp = mkdtempSync(join(tmpdir(), "nj-units-"));
  mkdirSync(join(tmp, "lib/systemd"), { recursive: true });
  writeFileSync(join(tmp, "lib/systemd/systemd"), "");
  run(process.execPath, [
    join(DIST, "node-join.cjs"),
    "timer",
    "install",
    "--root",
    tmp,
    "--scheduler",
    "systemd",
    "--binary",
    "/usr/bin/node-join",
  ]);
  const dest = join(stage, "lib/systemd/system");
  mkdirSync(dest, { recursive: true });
  for (const u of ["node-join-renew.service", "node-join-renew.timer"]) {
    copyFileSync(join(tmp, "etc/systemd/system", u), join(dest, u));
    chmodSync(join(dest, u), 0o644);
  }
  rmSync(tmp, { recursive: true, force: true });
}

/**
 * Writes what `node-join completion bash|zsh` and `node-join man` print where Debian's
 * bash-completion, zsh and man look for them (Debian Policy 12.1: man pages compressed with gzip
 * -9n).
 * @param {string} stage the package's root directory
 */
function completionsAndMan(stage) {
  const agent = (/** @type {string[]} */ ...args) =>
    run(process.execPath, [join(DIST, "node-join.cjs"), ...args]);
  /** @type {[string, string | Buffer][]} */
  const files = [
    ["usr/share/bash-completion/completions/node-join", agent("completion", "bash")],
    ["usr/share/zsh/vendor-completions/_node-join", agent("completion", "zsh")],
    ["usr/share/man/man1/node-join.1.gz", gzipSync(agent("man"), { level: 9 })],
  ];
  for (const [path, content] of files) {
    mkdirSync(dirname(join(stage, path)), { recursive: true });
    writeFileSync(join(stage, path), content);
    chmodSync(join(stage, path), 0o644);
  }
}

/**
 * Builds dist/node-join_<version>_<debArch>.deb from dist/node-join-linux-<arch>; returns its path.
 * @param {string} arch Node's name of the architecture (x64, arm64)
 * @param {string} debArch Debian's (amd64, arm64)
 */
function build(arch, debArch) {
  const binary = join(DIST, `node-join-linux-${arch}`);
  statSync(binary);
  const stage = mkdtempSync(join(tmpdir(), `nj-deb-${debArch}-`));
  chmodSync(stage, 0o755); // becomes the package's "./": must not be 0700
  mkdirSync(join(stage, "DEBIAN"), { recursive: true, mode: 0o755 });
  mkdirSync(join(stage, "usr/bin"), { recursive: true });
  copyFileSync(binary, join(stage, "usr/bin/node-join"));
  chmodSync(join(stage, "usr/bin/node-join"), 0o755);
  units(stage);
  completionsAndMan(stage);
  mkdirSync(join(stage, "etc/node-join"), { recursive: true, mode: 0o755 });
  copyFileSync(
    join(ROOT, "packaging/deb/config.yaml.example"),
    join(stage, "etc/node-join/config.yaml.example"),
  );
  chmodSync(join(stage, "etc/node-join/config.yaml.example"), 0o644);
  // The Prometheus alerting rules for the metrics textfile (docs/monitoring.md), to copy into
  // Prometheus' rule_files.
  const rules = join(stage, "usr/share/node-join/prometheus");
  mkdirSync(rules, { recursive: true });
  copyFileSync(
    join(ROOT, "packaging/prometheus/node-join.rules.yml"),
    join(rules, "node-join.rules.yml"),
  );
  chmodSync(join(rules, "node-join.rules.yml"), 0o644);
  const doc = join(stage, "usr/share/doc/node-join");
  mkdirSync(doc, { recursive: true });
  writeFileSync(
    join(doc, "copyright"),
    `node-join ${pkg.version}\nLicense: ${pkg.license}\nThe binary embeds Node.js (MIT license and bundled third-party licenses: https://github.com/nodejs/node/blob/main/LICENSE).\n`,
  );
  const installedKb = Math.ceil(
    Number(run("du", ["-sk", "--exclude=DEBIAN", stage]).split(/\s/)[0]),
  );
  writeFileSync(
    join(stage, "DEBIAN/control"),
    [
      "Package: node-join",
      `Version: ${pkg.version}`,
      `Architecture: ${debArch}`,
      "Maintainer: node-join developers <node-join@localhost>",
      "Section: admin",
      "Priority: optional",
      `Installed-Size: ${installedKb}`,
      "Depends: libc6 (>= 2.28), libstdc++6, libgcc-s1",
      "Recommends: kubelet",
      // cas.<ca>.identity: tpm runs tpm2-tools (agent/tpm); without it, node-join says so.
      "Suggests: tpm2-tools",
      `Description: ${pkg.description.split(":")[0]}`,
      " One binary that joins a Kubernetes node: it generates the keys on the host, sends CSRs to a",
      " remote CA (CFSSL, step-ca), verifies what comes back, installs the kubelet kubeconfig and the",
      " kubeadm PKI files (external-CA mode) and renews them with a systemd timer, shipped disabled.",
      "",
    ].join("\n"),
  );
  writeFileSync(join(stage, "DEBIAN/conffiles"), "/etc/node-join/config.yaml.example\n");
  const out = join(DIST, `node-join_${pkg.version}_${debArch}.deb`);
  // gzip: xz at dpkg's level takes about a minute per 100 MiB binary; the .xz files in dist/ are
  // the small downloads.
  run("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", stage, out]);
  rmSync(stage, { recursive: true, force: true });
  console.log(`[deb] ${out}`);
  return out;
}

const debs = Object.entries(ARCHES).map(([arch, debArch]) => build(arch, debArch));
// SHA256SUMS checks every download, the .debs too (sums.mjs).
const sumsFile = join(DIST, "SHA256SUMS");
const sums = withDebs(
  readFileSync(sumsFile, "utf8"),
  debs.map((d) => [basename(d), createHash("sha256").update(readFileSync(d)).digest("hex")]),
);
writeFileSync(sumsFile, sums);
console.log(`[deb] ${sumsFile}: the .debs' checksums added`);
