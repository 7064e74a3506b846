// The .deb packages: metadata, contents and modes, and a real install into a scratch root.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { REPO } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { binPath, debPath, ensureDebs } from "../helpers/package.js";
import { renderService, renderTimer } from "../../agent/ops/timer.js";

const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string };
const pin = JSON.parse(readFileSync(join(REPO, "packaging/node.json"), "utf8")) as {
  version: string;
};

before(() => ensureDebs(pkg.version));

const EXPECTED: [string, string][] = [
  ["./usr/bin/node-join", "-rwxr-xr-x"],
  ["./lib/systemd/system/node-join-renew.service", "-rw-r--r--"],
  ["./lib/systemd/system/node-join-renew.timer", "-rw-r--r--"],
  ["./etc/node-join/config.yaml.example", "-rw-r--r--"],
  ["./usr/share/doc/node-join/copyright", "-rw-r--r--"],
  ["./usr/share/bash-completion/completions/node-join", "-rw-r--r--"],
  ["./usr/share/zsh/vendor-completions/_node-join", "-rw-r--r--"],
  ["./usr/share/man/man1/node-join.1.gz", "-rw-r--r--"],
  ["./usr/share/node-join/prometheus/node-join.rules.yml", "-rw-r--r--"],
];

for (const debArch of ["amd64", "arm64"] as const) {
  test(`dpkg-deb --info and --contents of the ${debArch} package`, () => {
    const deb = debPath(pkg.version, debArch);
    const info = execFileSync("dpkg-deb", ["--info", deb]).toString();
    assert.match(info, /^ Package: node-join$/m);
    assert.match(info, new RegExp(`^ Version: ${pkg.version.replace(/\./g, "\\.")}$`, "m"));
    assert.match(info, new RegExp(`^ Architecture: ${debArch}$`, "m"));
    assert.match(info, /^ Depends: libc6 \(>= 2\.28\)/m);
    assert.doesNotMatch(info, /postinst|prerm/, "no maintainer scripts: the timer ships disabled");
    const contents = execFileSync("dpkg-deb", ["--contents", deb])
      .toString()
      .split("\n")
      .filter(Boolean);
    for (const [path, mode] of EXPECTED) {
      const line = contents.find((l) => l.endsWith(` ${path}`));
      assert.ok(line, `${path} in the package`);
      assert.ok(line.startsWith(`${mode} root/root`), `${path}: ${line}`);
    }
    assert.ok(contents[0]!.startsWith("drwxr-xr-x root/root"), "the package root is 0755");
    assert.ok(
      !contents.some((l) => /timers\.target\.wants|\/etc\/systemd\//.test(l)),
      "units are not enabled by the package",
    );
  });
}

test("installing the amd64 package into a scratch root gives the expected files, modes and a working binary", () => {
  const root = tempRoot("nj-dpkg-");
  mkdirSync(join(root, "var/lib/dpkg/info"), { recursive: true });
  mkdirSync(join(root, "var/lib/dpkg/updates"), { recursive: true });
  writeFileSync(join(root, "var/lib/dpkg/status"), "");
  const r = spawnSync(
    "dpkg",
    [
      "--root",
      root,
      "--force-depends",
      "--force-script-chrootless",
      "-i",
      debPath(pkg.version, "amd64"),
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  const listed = execFileSync("dpkg", ["--root", root, "-L", "node-join"]).toString();
  for (const [path, mode] of EXPECTED) {
    const file = join(root, path);
    assert.ok(listed.includes(path.slice(1)), `${path} registered with dpkg`);
    assert.equal(statSync(file).mode & 0o777, mode === "-rwxr-xr-x" ? 0o755 : 0o644, path);
  }
  assert.equal(
    readFileSync(join(root, "lib/systemd/system/node-join-renew.service"), "utf8"),
    renderService(["/usr/bin/node-join"]),
  );
  assert.equal(
    readFileSync(join(root, "lib/systemd/system/node-join-renew.timer"), "utf8"),
    renderTimer(),
  );
  // The completions and the man page are what the installed binary prints.
  const installed = (args: string[]) =>
    execFileSync(join(root, "usr/bin/node-join"), args, { env: {} });
  assert.equal(
    readFileSync(join(root, "usr/share/bash-completion/completions/node-join"), "utf8"),
    installed(["completion", "bash"]).toString(),
  );
  assert.equal(
    readFileSync(join(root, "usr/share/zsh/vendor-completions/_node-join"), "utf8"),
    installed(["completion", "zsh"]).toString(),
  );
  assert.equal(
    gunzipSync(readFileSync(join(root, "usr/share/man/man1/node-join.1.gz"))).toString(),
    installed(["man"]).toString(),
  );
  const v = execFileSync(join(root, "usr/bin/node-join"), ["version"], { env: {} })
    .toString()
    .trim();
  assert.equal(v, `node-join ${pkg.version} (node v${pin.version}, linux/x64)`);
  assert.match(
    execFileSync("dpkg", ["--root", root, "-s", "node-join"]).toString(),
    /^Status: install ok installed$/m,
  );
});

test("SHA256SUMS lists both .debs, and sha256sum -c verifies them", () => {
  const names = (["amd64", "arm64"] as const).map((a) => `node-join_${pkg.version}_${a}.deb`);
  const sums = readFileSync(join(REPO, "dist", "SHA256SUMS"), "utf8");
  for (const n of names)
    assert.match(sums, new RegExp(`^[0-9a-f]{64}  ${n.replace(/\./g, "\\.")}$`, "m"), n);
  const r = spawnSync("sha256sum", ["-c", "SHA256SUMS"], {
    cwd: join(REPO, "dist"),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const n of names) assert.ok(r.stdout.split("\n").includes(`${n}: OK`), `${n}: ${r.stdout}`);
});

test("the binaries need no newer glibc than the README and the package's Depends say", () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const documented = /\*\*Linux with glibc (\d+\.\d+) or later, on x86_64 and arm64\*\*/.exec(
    readme,
  )?.[1];
  assert.ok(documented, "README's Platforms section names the glibc minimum");
  const info = execFileSync("dpkg-deb", ["--info", debPath(pkg.version, "amd64")]).toString();
  assert.match(
    info,
    new RegExp(`^ Depends: libc6 \\(>= ${documented.replace(".", "\\.")}\\)`, "m"),
  );
  const newest = (v: string[]) =>
    v.sort((a, b) => a.localeCompare(b, "en", { numeric: true })).at(-1);
  for (const arch of ["x64", "arm64"] as const) {
    const symbols = execFileSync("objdump", ["-T", binPath(arch)], {
      maxBuffer: 1 << 28,
    }).toString();
    const versions = [
      ...new Set([...symbols.matchAll(/GLIBC_(\d+(?:\.\d+)+)/g)].map((m) => m[1]!)),
    ];
    assert.equal(newest(versions), documented, `${arch}: GLIBC_${newest(versions)}`);
  }
});
