// End-to-end test of `npm run package`: the single-file executables for linux/x64 and linux/arm64.
// Runs packaging/package.mjs --if-changed (which reuses dist/ when it was packaged from these very
// dist/sea parts, packaging scripts and Node pin); then checks the files themselves and runs both
// binaries
// (arm64 under qemu-user, whose Debian packages scripts/qemu-deps.sh installs when missing).
// Packaging takes ~1.5 min (mostly xz -9) the first time; later runs reuse dist/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensurePackaged, ensureQemu } from "../helpers/package.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const DIST = join(ROOT, "dist");
const PIN_FILE = join(ROOT, "packaging", "node.json");
const QEMU = ["/usr/bin/qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"];

const pin = JSON.parse(readFileSync(PIN_FILE, "utf8")) as { version: string };
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };

const ARCHES = [
  { arch: "x64", machine: 0x3e, machineName: "x86-64" },
  { arch: "arm64", machine: 0xb7, machineName: "AArch64" },
] as const;
const binPath = (arch: string) => join(DIST, `node-join-linux-${arch}`);
const OUTPUTS = [
  ...ARCHES.flatMap(({ arch }) => [`node-join-linux-${arch}`, `node-join-linux-${arch}.xz`]),
  "SHA256SUMS",
  "node-version.txt",
];

function sh(
  cmd: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number } = {},
): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 60_000,
    maxBuffer: 16 << 20,
  });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  return r;
}

function readElfHeader(file: string): Buffer {
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(64);
    assert.equal(readSync(fd, buf, 0, 64, 0), 64, `${file}: shorter than an ELF header`);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Section names of a 64-bit little-endian ELF file. */
function elfSectionNames(file: string): string[] {
  const data = readFileSync(file);
  const shoff = Number(data.readBigUInt64LE(0x28));
  const shentsize = data.readUInt16LE(0x3a);
  const shnum = data.readUInt16LE(0x3c);
  const shstrndx = data.readUInt16LE(0x3e);
  assert.ok(
    shoff > 0 && shnum > 0 && shoff + shnum * shentsize <= data.length,
    `${file}: bad section header table`,
  );
  const section = (i: number) => data.subarray(shoff + i * shentsize, shoff + (i + 1) * shentsize);
  const strtab = section(shstrndx);
  const strOff = Number(strtab.readBigUInt64LE(0x18));
  const names: string[] = [];
  for (let i = 0; i < shnum; i++) {
    const nameOff = section(i).readUInt32LE(0);
    const start = strOff + nameOff;
    names.push(data.toString("latin1", start, data.indexOf(0, start)));
  }
  return names;
}

function sha256File(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

function sha256OfXzContent(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    const xz = spawn("xz", ["-dc", file], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    xz.stdout.on("data", (chunk: Buffer) => hash.update(chunk));
    xz.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    xz.on("error", reject);
    xz.on("close", (code) =>
      code === 0
        ? resolve(hash.digest("hex"))
        : reject(new Error(`xz -dc ${file} exited ${code}: ${stderr}`)),
    );
  });
}

function timed<T>(fn: () => T): [T, number] {
  const t = process.hrtime.bigint();
  const r = fn();
  return [r, Number(process.hrtime.bigint() - t) / 1e6];
}

const versionLine = (arch: string) =>
  `node-join ${pkg.version} (node v${pin.version}, linux/${arch})`;

describe("npm run package: single executables", () => {
  before(() => {
    // --if-changed: reuses dist/ when it was packaged from these very parts, scripts and pin.
    const [, ms] = timed(() => ensurePackaged());
    console.error(`# package step: ${(ms / 1000).toFixed(1)}s`);
    for (const name of OUTPUTS)
      assert.ok(existsSync(join(DIST, name)), `dist/${name} missing after packaging`);
  });

  after(() => {
    for (const name of OUTPUTS) {
      const f = join(DIST, name);
      if (existsSync(f))
        console.error(
          `# ${`dist/${name}`.padEnd(32)} ${String(statSync(f).size).padStart(10)} bytes`,
        );
    }
  });

  test("dist/node-version.txt holds the pinned Node version", () => {
    assert.match(pin.version, /^\d+\.\d+\.\d+$/);
    assert.equal(readFileSync(join(DIST, "node-version.txt"), "utf8"), `${pin.version}\n`);
  });

  for (const { arch, machine, machineName } of ARCHES) {
    test(`${arch}: executable 64-bit LE ELF for ${machineName}`, () => {
      const file = binPath(arch);
      const st = statSync(file);
      assert.ok(st.isFile(), `${file} missing`);
      assert.equal(st.mode & 0o777, 0o755, `${file} mode ${(st.mode & 0o777).toString(8)}`);
      const h = readElfHeader(file);
      assert.deepEqual([...h.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], "ELF magic");
      assert.equal(h[4], 2, "EI_CLASS: ELFCLASS64");
      assert.equal(h[5], 1, "EI_DATA: little endian");
      assert.ok([2, 3].includes(h.readUInt16LE(16)), "e_type EXEC or DYN");
      assert.equal(
        h.readUInt16LE(18),
        machine,
        `e_machine 0x${h.readUInt16LE(18).toString(16)}, want 0x${machine.toString(16)}`,
      );
    });

    test(`${arch}: stripped, with the SEA blob injected`, () => {
      const file = binPath(arch);
      const names = elfSectionNames(file);
      assert.ok(!names.includes(".symtab"), `${file} still has .symtab`);
      const debug = names.filter((n) => n.startsWith(".debug") || n.startsWith(".zdebug"));
      assert.deepEqual(debug, [], `${file} still has debug sections`);
      const size = statSync(file).size;
      // The official binaries are ~123-127 MB with debug info, ~103-109 MB stripped.
      assert.ok(size < 115e6, `${file} is ${size} bytes: not stripped?`);
      assert.ok(size > 50e6, `${file} is ${size} bytes: too small to hold Node`);
      const data = readFileSync(file);
      assert.ok(data.includes("NODE_SEA_BLOB"), "NODE_SEA_BLOB resource present");
      assert.ok(
        data.includes("NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1"),
        "SEA fuse flipped",
      );
    });
  }

  test("SHA256SUMS verifies with sha256sum -c and covers the four files (and the .debs once built)", () => {
    const listed = readFileSync(join(DIST, "SHA256SUMS"), "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split(/\s+\*?/)[1]!)
      .sort();
    assert.deepEqual(
      listed.filter((n) => !n.endsWith(".deb")),
      OUTPUTS.slice(0, 4).sort(),
    );
    const r = sh("sha256sum", ["-c", "SHA256SUMS"], { cwd: DIST });
    assert.equal(r.status, 0, `sha256sum -c SHA256SUMS failed:\n${r.stdout}${r.stderr}`);
    for (const name of listed)
      assert.ok(r.stdout.split("\n").includes(`${name}: OK`), `${name}: not OK\n${r.stdout}`);
  });

  for (const { arch } of ARCHES) {
    test(`${arch}: .xz decompresses to the identical binary`, async () => {
      assert.equal(await sha256OfXzContent(`${binPath(arch)}.xz`), sha256File(binPath(arch)));
    });
  }

  test("x64: `version` runs with an empty environment (no node on PATH)", () => {
    const [r, ms] = timed(() => sh("env", ["-i", binPath("x64"), "version"], { cwd: "/" }));
    console.error(`# x64 version: ${ms.toFixed(0)} ms`);
    assert.equal(r.status, 0, `exit ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
    assert.equal(r.stdout.trim(), versionLine("x64"));
    assert.doesNotMatch(r.stderr, /warning/i, "no SEA/experimental warning on stderr");
  });

  test("x64: NODE_OPTIONS is ignored by the executable", () => {
    const r = sh("env", [
      "-i",
      "NODE_OPTIONS=--require=/nonexistent/node-join-package-test.js",
      binPath("x64"),
      "version",
    ]);
    assert.equal(r.status, 0, `NODE_OPTIONS reached the SEA: exit ${r.status}\n${r.stderr}`);
    assert.equal(r.stdout.trim(), versionLine("x64"));
  });

  test("arm64: `version` under qemu-aarch64-static prints linux/arm64", () => {
    ensureQemu();
    const [r, ms] = timed(() =>
      sh("env", ["-i", ...QEMU, binPath("arm64"), "version"], { cwd: "/", timeoutMs: 120_000 }),
    );
    console.error(`# arm64 version under qemu: ${ms.toFixed(0)} ms`);
    assert.equal(r.status, 0, `exit ${r.status ?? r.signal}\n${r.stdout}${r.stderr}`);
    assert.equal(r.stdout.trim(), versionLine("arm64"));
  });
});
