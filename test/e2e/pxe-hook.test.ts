// cloud-init/pxe-hook.sh against a scratch directory standing for the installer's /target: the
// binary
// comes from a loopback HTTP server, the join goes to a real CFSSL CA.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cfsslWorkerFlags } from "../../scripts/lib/args.js";
import { useCfssl } from "../helpers/cfssl.js";
import { REPO } from "../helpers/cli.js";
import { freePort } from "../helpers/listening.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import {
  assertJoinedTarget,
  integrationDeps,
  run,
  servedBinary,
  useFileServer,
  systemdWords,
} from "../helpers/integrations.js";

const HOOK = join(REPO, "cloud-init/pxe-hook.sh");
before(() => integrationDeps());
const ca = useCfssl();
const served = servedBinary();
const files = useFileServer({ "/node-join-linux-x64": served.bytes });
const binUrl = () => `${files.url}/node-join-linux-x64`;

/**
 * A scratch /target: an installed system with systemd, the kubelet package's unit and the auth key.
 */
function scratchTarget(keyName = "ca-auth.key"): { target: string; keyFile: string } {
  const target = tempRoot("nj-pxe-");
  mkdirSync(join(target, "lib/systemd/system"), { recursive: true });
  writeFileSync(join(target, "lib/systemd/systemd"), "", { mode: 0o755 });
  writeFileSync(
    join(target, "lib/systemd/system/kubelet.service"),
    "[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet\n[Install]\nWantedBy=multi-user.target\n",
  );
  return { target, keyFile: ca.installAuthKey(target, keyName) };
}

function joinFlags(keyFile: string, name: string, ip: string): string[] {
  return cfsslWorkerFlags(ca, { "ca-auth-key-file": keyFile, "node-name": name, ip });
}

/** What pxe-hook.sh runs besides sh, the downloader and the checksum tool. */
const HOOK_TOOLS = "mktemp cut tr sed mkdir cp chmod mv ln rm cat pwd".split(" ");

function hook(args: string[], env: NodeJS.ProcessEnv = {}, path = process.env.PATH) {
  return run(HOOK, args, { env: { PATH: path, HOME: process.env.HOME, ...env } });
}

/** The hook in firstboot mode for `target`, with the served binary and its checksum. */
function firstboot(target: string, flags: string[]) {
  return hook(["--", ...flags], {
    TARGET: target,
    NODE_JOIN_URL: binUrl(),
    NODE_JOIN_SHA256: served.sha256,
    NODE_JOIN_MODE: "firstboot",
  });
}

function assertInstalled(target: string) {
  const bin = join(target, "usr/local/bin/node-join");
  assert.equal(statSync(bin).mode & 0o777, 0o755);
  assert.deepEqual(readFileSync(bin), served.bytes);
  assert.ok(!existsSync(join(target, "usr/local/bin/.node-join.new")));
}

test("mode join (environment): installs the checked binary into the target, joins it with --root, enables the kubelet", async () => {
  const { target, keyFile } = scratchTarget();
  const r = await hook(["--", ...joinFlags(keyFile, "pxe1", "127.0.0.41")], {
    TARGET: target,
    NODE_JOIN_URL: binUrl(),
    NODE_JOIN_SHA256: served.sha256,
    NODE_JOIN_MODE: "join",
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assertInstalled(target);
  assert.equal(statSync(join(target, "etc/kubernetes/kubelet.conf")).mode & 0o777, 0o600);
  assert.match(
    readFileSync(join(target, "etc/kubernetes/kubelet.conf"), "utf8"),
    /system:node:pxe1/,
  );
  assert.equal(
    readFileSync(join(target, "etc/kubernetes/pki/ca.crt"), "utf8").trim(),
    ca.caPem.trim(),
  );
  assertJoinedTarget(target);
  assert.ok(!existsSync(join(target, "etc/systemd/system/node-join-firstboot.service")));
  // the renewal timer, enabled; with the single binary its unit runs it where the booted host has
  // it
  assert.equal(
    readlinkSync(join(target, "etc/systemd/system/timers.target.wants/node-join-renew.timer")),
    "/etc/systemd/system/node-join-renew.timer",
  );
  if (served.single) {
    assert.match(
      readFileSync(join(target, "etc/systemd/system/node-join-renew.service"), "utf8"),
      /^ExecStart=\/usr\/local\/bin\/node-join renew$/m,
    );
  }
});

test("mode join (options, wget and openssl instead of curl and sha256sum): the same, and a failed join passes node-join's exit code", async () => {
  // A PATH with only what a minimal installer has: no curl, no sha256sum.
  const bin = tempRoot("nj-pxe-path-");
  for (const tool of ["sh", "wget", "openssl", ...HOOK_TOOLS]) {
    const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
    if (found.startsWith("/")) symlinkSync(found, join(bin, tool));
  }
  assert.ok(existsSync(join(bin, "wget")), "wget is installed");
  const { target, keyFile } = scratchTarget();
  const r = await hook(
    [
      "--target",
      target,
      `--url=${binUrl()}`,
      "--sha256",
      `sha256:${served.sha256.toUpperCase()}`,
      "--mode",
      "join",
      "--",
      ...joinFlags(keyFile, "pxe2", "127.0.0.42"),
    ],
    {},
    bin,
  );
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assertInstalled(target);
  assert.match(
    readFileSync(join(target, "etc/kubernetes/kubelet.conf"), "utf8"),
    /system:node:pxe2/,
  );

  // a wrong pin: node-join refuses the CA (exit 5); the hook says so and exits with that code
  const other = scratchTarget();
  const flags = joinFlags(other.keyFile, "pxe3", "127.0.0.43");
  flags[flags.indexOf("--ca-cert-hash") + 1] = `sha256:${"0".repeat(64)}`;
  const bad = await hook(["--", ...flags], {
    TARGET: other.target,
    NODE_JOIN_URL: binUrl(),
    NODE_JOIN_SHA256: served.sha256,
  });
  assert.equal(bad.status, 5, `${bad.stdout}\n${bad.stderr}`);
  assert.match(bad.stderr, /pxe-hook\.sh: error: node-join join failed \(exit 5\)/);
  assert.ok(!existsSync(join(other.target, "etc/kubernetes")));
  assert.ok(
    !existsSync(join(other.target, "etc/systemd/system/multi-user.target.wants/kubelet.service")),
    "kubelet not enabled",
  );
});

test("mode join with the CA down: node-join leaves its retry unit in the target, the hook exits 0, the kubelet waits for the join", async () => {
  const { target, keyFile } = scratchTarget();
  const flags = joinFlags(keyFile, "pxe5", "127.0.0.45");
  // A port nothing listens on: the CA (or the network to it) is not up during the install.
  const port = await freePort();
  flags[flags.indexOf("--ca-url") + 1] = `http://127.0.0.1:${port}`;
  const r = await hook(["--", ...flags, "--timeout", "1s"], {
    TARGET: target,
    NODE_JOIN_URL: binUrl(),
    NODE_JOIN_SHA256: served.sha256,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(
    r.stderr,
    /could not finish now \(exit 3\): the installed system retries it at boot/,
  );
  const units = join(target, "etc/systemd/system");
  assert.equal(
    readlinkSync(join(units, "multi-user.target.wants/node-join-join.service")),
    "/etc/systemd/system/node-join-join.service",
  );
  const unit = readFileSync(join(units, "node-join-join.service"), "utf8");
  // With the single binary the unit runs it where the booted host has it.
  const exec = served.single ? "/usr/local/bin/node-join" : ".*";
  assert.match(
    unit,
    new RegExp(`^ExecStart=${exec} join --config /var/lib/node-join/join-pending\\.yaml$`, "m"),
  );
  assert.match(unit, /^ExecStartPost=-\/bin\/systemctl enable --now --no-block kubelet\.service$/m);
  assert.ok(!existsSync(join(target, "etc/kubernetes")));
  assert.ok(!existsSync(join(units, "multi-user.target.wants/kubelet.service")), "kubelet waits");
  const st = await run(join(target, "usr/local/bin/node-join"), ["status", "--root", target]);
  assert.equal(st.status, 12, st.stderr);
  assert.match(st.stderr, /^node-join: error: join pending: /);
});

test("mode firstboot: a oneshot unit systemd accepts, enabled through the wants link, whose ExecStart (flags with spaces, quotes, $ and %) joins", async () => {
  // An auth key file name systemd's command-line syntax must carry intact.
  const { target, keyFile } = scratchTarget(`ca auth 'k' "q" $HOME 100% back\\slash.key`);
  const flags = joinFlags(keyFile, "pxe4", "127.0.0.44");
  const signs = ca.signRequests();
  const r = await firstboot(target, flags);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assertInstalled(target);
  assert.ok(!existsSync(join(target, "etc/kubernetes")), "nothing joined during the install");
  assert.equal(ca.signRequests(), signs);

  const units = join(target, "etc/systemd/system");
  const unit = readFileSync(join(units, "node-join-firstboot.service"), "utf8");
  const lines = unit.split("\n");
  for (const line of [
    "[Unit]",
    "Wants=network-online.target",
    "After=network-online.target time-sync.target",
    "ConditionPathExists=!/etc/kubernetes/kubelet.conf",
    "[Service]",
    "Type=oneshot",
    "ExecStartPost=/bin/systemctl enable --now --no-block kubelet.service",
    "[Install]",
    "WantedBy=multi-user.target",
  ]) {
    assert.ok(lines.includes(line), `${line}\n${unit}`);
  }
  assert.equal(
    readlinkSync(join(units, "multi-user.target.wants/node-join-firstboot.service")),
    "/etc/systemd/system/node-join-firstboot.service",
  );

  // systemd accepts it: verify a copy whose ExecStart binary exists here (the installed one)
  const dir = tempRoot("nj-pxe-verify-");
  const copy = join(dir, "node-join-firstboot.service");
  writeFileSync(
    copy,
    unit.replace(
      "ExecStart=/usr/local/bin/node-join ",
      `ExecStart=${join(target, "usr/local/bin/node-join")} `,
    ),
  );
  const verify = spawnSync("systemd-analyze", ["verify", copy], { encoding: "utf8" });
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(`${verify.stdout}${verify.stderr}`.trim(), "", "systemd-analyze has nothing to say");

  // systemd's word splitting gives back exactly the flags, and running them (as the booted host
  // would, here with --root) joins
  const line = lines.find((l) => l.startsWith("ExecStart="))!;
  const argv = systemdWords(line.slice("ExecStart=".length));
  assert.deepEqual(argv, ["/usr/local/bin/node-join", "join", ...flags]);
  const joined = await run(join(target, "usr/local/bin/node-join"), [
    ...argv.slice(1),
    "--root",
    target,
  ]);
  assert.equal(joined.status, 0, joined.stderr);
  assert.match(
    readFileSync(join(target, "etc/kubernetes/kubelet.conf"), "utf8"),
    /system:node:pxe4/,
  );
});

test("mode firstboot: an invalid join flag fails the install (exit 2, node-join's message) and writes no unit", async () => {
  const { target, keyFile } = scratchTarget();
  const flags = joinFlags(keyFile, "we ird", "127.0.0.46");
  const r = await firstboot(target, flags);
  assert.equal(r.status, 2, `${r.stdout}\n${r.stderr}`);
  assert.match(
    r.stderr,
    /pxe-hook\.sh: error: the join flags are not valid, no unit written: node-join: error: --node-name: is not a valid node name/,
  );
  const units = join(target, "etc/systemd/system");
  assert.ok(!existsSync(join(units, "node-join-firstboot.service")));
  assert.ok(!existsSync(join(units, "multi-user.target.wants/node-join-firstboot.service")));
});

test("under busybox's sh, wget and sha256sum (as in Debian's installer): firstboot writes the same unit; a mismatch installs nothing", async () => {
  const bin = tempRoot("nj-pxe-busybox-");
  const busybox = spawnSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).stdout.trim();
  assert.ok(busybox.startsWith("/"), "busybox is installed (scripts/cloud-init-deps.sh)");
  for (const applet of ["sh", "wget", "sha256sum", ...HOOK_TOOLS]) {
    symlinkSync(busybox, join(bin, applet));
  }
  const { target, keyFile } = scratchTarget(`key with "quotes" and 50% $VAR.key`);
  const flags = joinFlags(keyFile, "pxe5", "127.0.0.45");
  const env = {
    PATH: bin,
    TARGET: target,
    NODE_JOIN_URL: binUrl(),
    NODE_JOIN_SHA256: served.sha256,
    NODE_JOIN_MODE: "firstboot",
  };
  const r = await run(join(bin, "sh"), [HOOK, "--", ...flags], { env });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assertInstalled(target);
  const unit = readFileSync(join(target, "etc/systemd/system/node-join-firstboot.service"), "utf8");
  const line = unit.split("\n").find((l) => l.startsWith("ExecStart="))!;
  assert.deepEqual(systemdWords(line.slice("ExecStart=".length)), [
    "/usr/local/bin/node-join",
    "join",
    ...flags,
  ]);
  assert.equal(
    readlinkSync(
      join(target, "etc/systemd/system/multi-user.target.wants/node-join-firstboot.service"),
    ),
    "/etc/systemd/system/node-join-firstboot.service",
  );

  const other = scratchTarget();
  const before = snapshot(other.target);
  const bad = await run(join(bin, "sh"), [HOOK], {
    env: { ...env, TARGET: other.target, NODE_JOIN_SHA256: "e".repeat(64) },
  });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /SHA-256 mismatch .* nothing installed/);
  assert.deepEqual(diffSnapshots(before, snapshot(other.target)), []);
});

test("checksum mismatch or failed download: non-zero with a clear message and nothing installed; usage errors exit 2", async () => {
  const { target } = scratchTarget();
  const before = snapshot(target);
  const wrong = "f".repeat(64);
  const mismatch = await hook(["--", "--api-server", "https://10.0.0.1:6443"], {
    TARGET: target,
    NODE_JOIN_URL: binUrl(),
    NODE_JOIN_SHA256: wrong,
  });
  assert.equal(mismatch.status, 1);
  assert.match(
    mismatch.stderr,
    new RegExp(
      `pxe-hook\\.sh: error: SHA-256 mismatch for ${binUrl()}: expected ${wrong}, got ${served.sha256}; nothing installed`,
    ),
  );
  assert.deepEqual(diffSnapshots(before, snapshot(target)), []);

  const missing = await hook([], {
    TARGET: target,
    NODE_JOIN_URL: `${files.url}/nope`,
    NODE_JOIN_SHA256: served.sha256,
    NODE_JOIN_MODE: "firstboot",
  });
  assert.equal(missing.status, 1);
  assert.match(
    missing.stderr,
    /pxe-hook\.sh: error: download of http:\/\/127\.0\.0\.1:\d+\/nope failed \(curl exit 22\); nothing installed/,
  );
  assert.deepEqual(diffSnapshots(before, snapshot(target)), []);

  for (const [env, args, message] of [
    [{ NODE_JOIN_SHA256: served.sha256 }, [], /no binary URL/],
    [{ NODE_JOIN_URL: binUrl() }, [], /no checksum/],
    [{ NODE_JOIN_URL: binUrl(), NODE_JOIN_SHA256: "abc" }, [], /not 64 hex digits/],
    [
      { NODE_JOIN_URL: binUrl(), NODE_JOIN_SHA256: served.sha256, NODE_JOIN_MODE: "later" },
      [],
      /must be join or firstboot/,
    ],
    [
      { NODE_JOIN_URL: binUrl(), NODE_JOIN_SHA256: served.sha256 },
      ["--api-server", "x"],
      /unknown argument '--api-server' \(node-join join flags go after --\)/,
    ],
  ] as [NodeJS.ProcessEnv, string[], RegExp][]) {
    const r = await hook(args, { TARGET: target, ...env });
    assert.equal(r.status, 2, `${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  assert.deepEqual(diffSnapshots(before, snapshot(target)), []);
});
