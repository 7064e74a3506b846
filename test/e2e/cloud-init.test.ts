// The integrations an operator pastes: cloud-init/worker.yaml, cloud-init/control-plane.yaml and
// cloud-init/autoinstall.yaml. Validated with Debian's `cloud-init schema`, then run for real: the
// join lines against real CFSSL CAs with --root, and the whole runcmd script / late-commands as
// cloud-init and subiquity run them (download from a loopback HTTP server, checksum, install,
// join).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { DEFAULT_PROFILES, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { REPO, runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { forward, freePort } from "../helpers/listening.js";
import {
  assertJoinedTarget,
  integrationDeps,
  run,
  servedBinary,
  shellify,
  useFileServer,
  substitute,
  systemdWords,
  writeFilesUnder,
  type RunCmd,
  type WriteFile,
} from "../helpers/integrations.js";
import { saKeyDir } from "../helpers/sa-keys.js";

const WORKER = join(REPO, "cloud-init/worker.yaml");
const CONTROL_PLANE = join(REPO, "cloud-init/control-plane.yaml");
const AUTOINSTALL = join(REPO, "cloud-init/autoinstall.yaml");

// The example values the files carry (and docs/cloud-init-and-pxe.md tells to replace).
const EX = {
  files: "http://files.lab.example/node-join/v0.1.0",
  sumX64: "a".repeat(64),
  sumArm64: "b".repeat(64),
  ca: "http://ca.lab.example:8888",
  frontProxyCa: "http://ca.lab.example:8889",
  etcdCa: "http://ca.lab.example:8890",
  pin: `sha256:${"1".repeat(64)}`,
  frontProxyPin: `sha256:${"2".repeat(64)}`,
  etcdPin: `sha256:${"3".repeat(64)}`,
  authKey: "0123456789abcdef0123456789abcdef",
};

interface UserData {
  write_files: WriteFile[];
  runcmd: RunCmd[];
}
const load = <T>(file: string): T => YAML.parse(readFileSync(file, "utf8")) as T;

const isJoin = (c: RunCmd): c is string[] =>
  Array.isArray(c) && c[0]!.endsWith("/node-join") && c[1] === "join";
/** argv with --root inserted after `join`. */
const withRoot = (argv: string[], root: string) => [
  argv[0]!,
  "join",
  "--root",
  root,
  ...argv.slice(2),
];

let ca: CfsslCa, k8s: CfsslCa, fp: CfsslCa, etcdCa: CfsslCa;
const served = servedBinary();
const files = useFileServer({
  "/node-join/v0.1.0/node-join-linux-x64": served.bytes,
  "/node-join/v0.1.0/node-join-linux-arm64": served.bytes,
});
let saDir: string;

before(async () => {
  integrationDeps();
  const client = ["signing", "key encipherment", "client auth"];
  const serving = ["signing", "key encipherment", "server auth"];
  [ca, k8s, fp, etcdCa] = await Promise.all([
    startCfssl({
      profiles: {
        ...DEFAULT_PROFILES,
        "kubelet-client": { usages: client },
        "kubelet-serving": { usages: serving },
      },
    }),
    startCfssl({ cn: "kubernetes" }),
    startCfssl({ cn: "front-proxy-ca" }),
    startCfssl({ cn: "etcd-ca" }),
  ]);
  saDir = saKeyDir("nj-sa-");
});
after(async () => {
  await Promise.all([ca, k8s, fp, etcdCa].map((c) => c?.stop()));
});

function schema(file: string) {
  return spawnSync("cloud-init", ["schema", "--config-file", file], { encoding: "utf8" });
}

test("the three files pass `cloud-init schema`; broken copies fail it", () => {
  for (const f of [WORKER, CONTROL_PLANE, AUTOINSTALL]) {
    const r = schema(f);
    assert.equal(r.status, 0, `${f}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /Valid cloud-config/);
  }
  const dir = tempRoot("nj-schema-");
  const worker = readFileSync(WORKER, "utf8");
  const autoinstall = readFileSync(AUTOINSTALL, "utf8");
  const broken: [string, string, string, RegExp][] = [
    // a misspelt key of a write_files entry
    [
      "typo.yaml",
      worker,
      worker.replace("    permissions: '0600'", "    permission: '0600'"),
      /Additional properties are not allowed \('permission' was unexpected\)/,
    ],
    // unquoted octal: YAML reads 0600 as the number 384, which cloud-init refuses
    [
      "octal.yaml",
      worker,
      worker.replace("    permissions: '0600'", "    permissions: 0600"),
      /permissions: 384 is not of type 'string'/,
    ],
    [
      "runcmd.yaml",
      worker,
      worker.replace("runcmd:\n", "runcmd: 3\nunused:\n"),
      /runcmd: 3 is not of type 'array'/,
    ],
    [
      "autoinstall.yaml",
      autoinstall,
      autoinstall.replace("  version: 1\n", ""),
      /'version' is a required property/,
    ],
  ];
  for (const [name, original, content, message] of broken) {
    assert.notEqual(content, original, `${name}: the edit applied`);
    writeFileSync(join(dir, name), content);
    const r = schema(join(dir, name));
    assert.notEqual(r.status, 0, `${name} must fail: ${r.stdout}${r.stderr}`);
    assert.match(`${r.stdout}${r.stderr}`, message, name);
  }
});

test("the user-data files have the expected shape: 0600 secrets, set -eu first, checked download, pinned join, kubelet last", () => {
  for (const f of [WORKER, CONTROL_PLANE]) {
    const ud = load<UserData>(f);
    assert.ok(ud.write_files.length > 0);
    for (const w of ud.write_files) {
      assert.match(w.path, /^\/etc\/node-join\//, f);
      assert.equal(w.permissions, "0600", `${f} ${w.path}`);
      assert.equal(w.owner, "root:root", `${f} ${w.path}`);
    }
    assert.equal(ud.runcmd[0], "set -eu", `${f}: any failing step stops the runcmd script`);
    assert.match(String(ud.runcmd[1]), /sha256sum/);
    const joinCmd = ud.runcmd.find(isJoin)!;
    assert.ok(joinCmd, `${f}: a node-join join line`);
    assert.equal(joinCmd[0], "/usr/local/bin/node-join");
    for (const flag of ["--ca-url", "--ca-auth-key-file"])
      assert.ok(joinCmd.includes(flag), `${f}: ${flag}`);
    assert.match(joinCmd[joinCmd.indexOf("--ca-cert-hash") + 1]!, /^sha256:[0-9a-f]{64}$/);
    assert.ok(
      !joinCmd.some((a) => a.includes(EX.authKey.slice(0, 16))),
      "no auth key on the command line",
    );
    assert.deepEqual(ud.runcmd.at(-1), ["systemctl", "enable", "--now", "kubelet"]);
  }
  // The download step is the same in both files.
  assert.equal(load<UserData>(WORKER).runcmd[1], load<UserData>(CONTROL_PLANE).runcmd[1]);
  const cp = load<UserData>(CONTROL_PLANE).runcmd.find(isJoin)!;
  for (const flag of [
    "--role",
    "--control-plane-endpoint",
    "--front-proxy-ca-cert-hash",
    "--front-proxy-ca-auth-key-file",
    "--etcd-ca-cert-hash",
    "--etcd-ca-auth-key-file",
    "--sa-key-file",
    "--sa-pub-file",
  ]) {
    assert.ok(cp.includes(flag), `control plane: ${flag}`);
  }
});

test("the guide's worker and control-plane examples are valid and carry the files' runcmd commands", () => {
  const section = readFileSync(join(REPO, "docs/cloud-init-and-pxe.md"), "utf8");
  const blocks = [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const dir = tempRoot("nj-readme-");
  writeFileSync(join(dir, "worker.yaml"), blocks[0]!);
  const r = schema(join(dir, "worker.yaml"));
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const lists = (cmds: RunCmd[]) => cmds.filter((c) => Array.isArray(c));
  assert.deepEqual(lists(YAML.parse(blocks[0]!).runcmd), lists(load<UserData>(WORKER).runcmd));
  assert.deepEqual(
    lists(YAML.parse(blocks[1]!) as RunCmd[]),
    lists(load<UserData>(CONTROL_PLANE).runcmd),
  );
});

/** The substitutions that turn the examples into this test's servers, keys and temp root. */
function substitutions(root: string, cas: [string, string][]): [string, string][] {
  return [
    [EX.files, `${files.url}/node-join/v0.1.0`],
    [EX.sumX64, served.sha256],
    [EX.sumArm64, served.sha256],
    ...cas,
    ["/usr/local/bin", `${root}/usr/local/bin`],
    ["/etc/node-join/", `${root}/etc/node-join/`],
  ];
}
const workerMap = (root: string) =>
  substitutions(root, [
    [EX.ca, ca.url],
    [EX.pin, ca.pin],
  ]);
const controlPlaneMap = (root: string) =>
  substitutions(root, [
    [EX.ca, k8s.url],
    [EX.pin, k8s.pin],
    [EX.frontProxyCa, fp.url],
    [EX.frontProxyPin, fp.pin],
    [EX.etcdCa, etcdCa.url],
    [EX.etcdPin, etcdCa.pin],
  ]);
const workerSecrets = () => ({ "/etc/node-join/ca-auth.key": `${ca.authKeyHex}\n` });
const controlPlaneSecrets = () => ({
  "/etc/node-join/kubernetes-ca.key": `${k8s.authKeyHex}\n`,
  "/etc/node-join/front-proxy-ca.key": `${fp.authKeyHex}\n`,
  "/etc/node-join/etcd-ca.key": `${etcdCa.authKeyHex}\n`,
  "/etc/node-join/sa.key": readFileSync(join(saDir, "sa.key"), "utf8"),
  "/etc/node-join/sa.pub": readFileSync(join(saDir, "sa.pub"), "utf8"),
});

/** A temp root holding the user-data's write_files (secrets replaced by the test's). */
function rootWithWriteFiles(ud: UserData, secrets: Record<string, string>): string {
  const root = tempRoot("nj-ci-");
  writeFilesUnder(root, ud.write_files, secrets);
  for (const w of ud.write_files)
    assert.equal(statSync(join(root, w.path)).mode & 0o777, 0o600, w.path);
  return root;
}

/** The user-data's runcmd run as cloud-init runs it, in a new root: it succeeds and installs. */
async function runcmdInstalls(
  file: string,
  secrets: Record<string, string>,
  map: (root: string) => [string, string][],
) {
  const ud = load<UserData>(file);
  const root = rootWithWriteFiles(ud, secrets);
  const r = await runScript(runcmdFor(ud, root, map(root)));
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assertInstalled(root);
  return { root, r };
}

test("worker.yaml: its join line joins a worker against a real CFSSL CA (--root)", async () => {
  const ud = load<UserData>(WORKER);
  const root = rootWithWriteFiles(ud, workerSecrets());
  const [joinCmd] = substitute([ud.runcmd.find(isJoin)!], workerMap(root));
  const r = await runCli([
    ...withRoot(joinCmd!, root).slice(1),
    "--node-name",
    "ci-w1",
    "--ip",
    "127.0.0.21",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(
    lstatSync(join(root, "var/lib/kubelet/pki/kubelet-client-current.pem")).isSymbolicLink(),
  );
  assert.ok(
    lstatSync(join(root, "var/lib/kubelet/pki/kubelet-server-current.pem")).isSymbolicLink(),
  );
  assert.equal(statSync(join(root, "etc/kubernetes/kubelet.conf")).mode & 0o777, 0o600);
  assert.match(
    readFileSync(join(root, "etc/kubernetes/kubelet.conf"), "utf8"),
    /server: https:\/\/cp\.lab\.example:6443/,
  );
  assert.match(
    readFileSync(join(root, "etc/kubernetes/kubelet.conf"), "utf8"),
    /system:node:ci-w1/,
  );
  assert.equal(
    readFileSync(join(root, "etc/kubernetes/pki/ca.crt"), "utf8").trim(),
    ca.caPem.trim(),
  );
  const config = readFileSync(join(root, "etc/node-join/config.yaml"), "utf8");
  assert.match(config, /authKeyFile: \/etc\/node-join\/ca-auth\.key/);
  assert.match(config, /clientProfile: kubelet-client/);
});

/** Runs a runcmd list the way cloud-init does (one sh script), with systemctl stubbed to a log. */
async function runScript(cmds: RunCmd[], extraPath = "") {
  const dir = tempRoot("nj-runcmd-");
  const stubs = join(dir, "bin");
  mkdirSync(stubs);
  const log = join(dir, "systemctl.log");
  writeFileSync(join(stubs, "systemctl"), `#!/bin/sh\necho "$*" >> '${log}'\n`, { mode: 0o755 });
  const script = join(dir, "runcmd");
  writeFileSync(script, shellify(cmds), { mode: 0o700 });
  const r = await run(script, [], {
    env: { PATH: `${extraPath}${stubs}:${process.env.PATH}`, HOME: process.env.HOME },
  });
  return { ...r, stubs, systemctl: existsSync(log) ? readFileSync(log, "utf8") : "" };
}

function runcmdFor(ud: UserData, root: string, map: [string, string][]): RunCmd[] {
  return substitute(ud.runcmd, map).map((c) => (isJoin(c) ? withRoot(c, root) : c));
}

function assertInstalled(root: string) {
  const bin = join(root, "usr/local/bin/node-join");
  assert.equal(statSync(bin).mode & 0o777, 0o755);
  assert.deepEqual(readFileSync(bin), served.bytes);
  assert.ok(
    !existsSync(join(root, "usr/local/bin/.node-join.download")),
    "no download left behind",
  );
}

test("worker.yaml: the whole runcmd, run as cloud-init runs it, downloads, checks, installs, joins, starts the kubelet", async () => {
  const { root, r } = await runcmdInstalls(WORKER, workerSecrets(), workerMap);
  // joined with the discovered node name
  const node = hostname().split(".")[0]!.toLowerCase();
  assert.match(
    readFileSync(join(root, "etc/kubernetes/kubelet.conf"), "utf8"),
    new RegExp(`system:node:${node}`),
  );
  assert.ok(existsSync(join(root, "var/lib/kubelet/pki/kubelet-server-current.pem")));
  // the renewal timer (cron under a root without systemd)
  assert.ok(
    existsSync(join(root, "etc/systemd/system/node-join-renew.timer")) ||
      existsSync(join(root, "etc/cron.d/node-join")),
    "the renewal timer",
  );
  assert.equal(r.systemctl, "enable --now kubelet\n");
});

test("worker.yaml: a first boot whose join finds the CA down stops the script, leaves the node set to retry; the retry joins once the CA is up and starts the kubelet", async () => {
  const ud = load<UserData>(WORKER);
  const root = rootWithWriteFiles(ud, workerSecrets());
  mkdirSync(join(root, "lib/systemd"), { recursive: true });
  writeFileSync(join(root, "lib/systemd/systemd"), "", { mode: 0o755 }); // systemd is the init
  const port = await freePort();
  const map = workerMap(root).map(([k, v]): [string, string] =>
    k === EX.ca ? [k, `http://127.0.0.1:${port}`] : [k, v],
  );
  // The runcmd as cloud-init runs it once per instance: the join fails (exit 3), the script stops.
  const r = await runScript(runcmdFor(ud, root, [...map, ["15m", "1s"]]));
  assert.notEqual(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /join pending: node-join-join\.service installed, enabled/);
  assert.equal(r.systemctl, "", "the kubelet is not started without credentials");
  const unit = readFileSync(join(root, "etc/systemd/system/node-join-join.service"), "utf8");
  assert.match(unit, /^After=network-online\.target time-sync\.target$/m);
  // The next boot (cloud-init does not run runcmd again): the unit's ExecStart, with the CA up.
  const argv = systemdWords(
    unit
      .split("\n")
      .find((l) => l.startsWith("ExecStart="))!
      .slice(10),
  );
  const stop = await forward(port, ca.url);
  try {
    const retry = await run(join(root, "usr/local/bin/node-join"), [
      "join",
      "--config",
      join(root, argv.at(-1)!),
      "--root",
      root,
    ]);
    assert.equal(retry.status, 0, retry.stderr);
  } finally {
    await stop();
  }
  assert.ok(existsSync(join(root, "etc/kubernetes/kubelet.conf")));
  assert.ok(!existsSync(join(root, "etc/systemd/system/node-join-join.service")));
  // What starts the kubelet then: the unit's ExecStartPost, as the runcmd's last step would have.
  assert.match(unit, /^ExecStartPost=-\/bin\/systemctl enable --now --no-block kubelet\.service$/m);
});

test("worker.yaml: a checksum mismatch, a failed download or an unknown architecture stops the boot script", async () => {
  const ud = load<UserData>(WORKER);
  const cases: { name: string; map: (root: string) => [string, string][]; message: RegExp }[] = [
    {
      name: "mismatch",
      map: (root) =>
        workerMap(root).map(
          ([from, to]) => [from, to === served.sha256 ? "c".repeat(64) : to] as [string, string],
        ),
      message: new RegExp(
        `SHA-256 MISMATCH for ${files.url}/node-join/v0\\.1\\.0/node-join-linux-\\w+: expected c{64}, got ${served.sha256}\\. Not installed; not joining\\.`,
      ),
    },
    {
      name: "404",
      map: (root) =>
        workerMap(root).map(
          ([from, to]) => [from, to.replace("/v0.1.0", "/v9.9.9")] as [string, string],
        ),
      message:
        /download of http:\/\/127\.0\.0\.1:\d+\/node-join\/v9\.9\.9\/node-join-linux-\w+ failed/,
    },
  ];
  for (const c of cases) {
    const root = rootWithWriteFiles(ud, workerSecrets());
    const signs = ca.signRequests();
    const r = await runScript(runcmdFor(ud, root, c.map(root)));
    assert.notEqual(r.status, 0, c.name);
    assert.match(r.stderr, c.message, c.name);
    assert.ok(!existsSync(join(root, "usr/local/bin/node-join")), `${c.name}: nothing installed`);
    assert.ok(
      !existsSync(join(root, "usr/local/bin/.node-join.download")),
      `${c.name}: no download left behind`,
    );
    assert.ok(!existsSync(join(root, "etc/kubernetes")), `${c.name}: no join`);
    assert.equal(ca.signRequests(), signs, `${c.name}: no CSR sent`);
    assert.equal(r.systemctl, "", `${c.name}: the kubelet is not started`);
  }
  // an architecture without a binary
  const root = rootWithWriteFiles(ud, workerSecrets());
  const cmds = runcmdFor(ud, root, workerMap(root));
  const dir = tempRoot("nj-uname-");
  writeFileSync(join(dir, "uname"), "#!/bin/sh\necho riscv64\n", { mode: 0o755 });
  const r = await runScript(cmds, `${dir}:`);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /no node-join binary for architecture riscv64/);
  assert.ok(!existsSync(join(root, "usr/local/bin/node-join")));
});

test("control-plane.yaml: its join line produces the whole kubeadm external-CA set from three CFSSL CAs (--root)", async () => {
  const ud = load<UserData>(CONTROL_PLANE);
  const root = rootWithWriteFiles(ud, controlPlaneSecrets());
  const [joinCmd] = substitute([ud.runcmd.find(isJoin)!], controlPlaneMap(root));
  const r = await runCli(
    [...withRoot(joinCmd!, root).slice(1), "--node-name", "ci-cp1", "--ip", "127.0.0.31", "--json"],
    { timeoutMs: 180_000 },
  );
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { issued: { kind: string }[] };
  assert.equal(out.issued.length, 13, r.stdout);
  const pki = join(root, "etc/kubernetes/pki");
  for (const f of [
    "ca.crt",
    "front-proxy-ca.crt",
    "etcd/ca.crt",
    "apiserver.crt",
    "apiserver-kubelet-client.crt",
    "front-proxy-client.crt",
    "apiserver-etcd-client.crt",
    "etcd/server.crt",
    "etcd/peer.crt",
    "etcd/healthcheck-client.crt",
    "sa.pub",
  ]) {
    assert.equal(statSync(join(pki, f)).mode & 0o777, 0o644, f);
  }
  for (const f of ["apiserver.key", "etcd/peer.key", "sa.key"])
    assert.equal(statSync(join(pki, f)).mode & 0o777, 0o600, f);
  assert.equal(
    readFileSync(join(pki, "sa.key"), "utf8"),
    readFileSync(join(saDir, "sa.key"), "utf8"),
    "the shared sa.key",
  );
  assert.equal(readFileSync(join(pki, "etcd/ca.crt"), "utf8").trim(), etcdCa.caPem.trim());
  assert.equal(readFileSync(join(pki, "front-proxy-ca.crt"), "utf8").trim(), fp.caPem.trim());
  for (const f of [
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
    "kubelet.conf",
  ]) {
    assert.equal(statSync(join(root, "etc/kubernetes", f)).mode & 0o777, 0o600, f);
  }
  assert.match(
    readFileSync(join(root, "etc/kubernetes/admin.conf"), "utf8"),
    /server: https:\/\/cp\.lab\.example:6443/,
  );
  const apiserver = execFileSync("openssl", [
    "x509",
    "-in",
    join(pki, "apiserver.crt"),
    "-noout",
    "-ext",
    "subjectAltName",
  ]).toString();
  assert.match(apiserver, /DNS:cp\.lab\.example/);
  assert.match(apiserver, /IP Address:127\.0\.0\.31/);
});

test("control-plane.yaml: the whole runcmd, run as cloud-init runs it, installs node-join and joins the control plane", async () => {
  const { root, r } = await runcmdInstalls(CONTROL_PLANE, controlPlaneSecrets(), controlPlaneMap);
  for (const f of [
    "etc/kubernetes/pki/apiserver.crt",
    "etc/kubernetes/pki/etcd/server.crt",
    "etc/kubernetes/admin.conf",
    "etc/kubernetes/pki/sa.key",
  ]) {
    assert.ok(existsSync(join(root, f)), f);
  }
  assert.equal(r.systemctl, "enable --now kubelet\n");
});

// ---- Ubuntu autoinstall

interface Autoinstall {
  autoinstall: { version: number; "late-commands": RunCmd[] };
}

/**
 * Runs late-commands the way subiquity does: each on its own, a string through `sh -c`, stopping at
 * the first failure.
 */
async function runLateCommands(cmds: RunCmd[]) {
  for (const c of cmds) {
    if (c === null) continue;
    const [cmd, ...args] = typeof c === "string" ? ["sh", "-c", c] : c;
    const r = await run(cmd!, args);
    if (r.status !== 0) return { ok: false, command: c, stdout: r.stdout, stderr: r.stderr };
  }
  return { ok: true, command: null, stdout: "", stderr: "" };
}

/** A scratch /target with the kubelet package's unit, as the installed system has it. */
function scratchTarget(): string {
  const target = tempRoot("nj-target-");
  mkdirSync(join(target, "lib/systemd/system"), { recursive: true });
  mkdirSync(join(target, "etc/systemd/system"), { recursive: true });
  writeFileSync(
    join(target, "lib/systemd/system/kubelet.service"),
    "[Unit]\nDescription=kubelet\n[Service]\nExecStart=/usr/bin/kubelet\n[Install]\nWantedBy=multi-user.target\n",
  );
  return target;
}

function autoinstallMap(target: string): [string, string][] {
  return [
    [EX.files, `${files.url}/node-join/v0.1.0`],
    [EX.sumX64, served.sha256],
    [EX.sumArm64, served.sha256],
    [EX.ca, ca.url],
    [EX.pin, ca.pin],
    [EX.authKey, ca.authKeyHex],
    ["/target", target],
  ];
}

test("autoinstall.yaml (A): late-commands install node-join and the auth key into /target and join it there", async () => {
  const doc = load<Autoinstall>(AUTOINSTALL);
  assert.equal(doc.autoinstall.version, 1);
  const late = doc.autoinstall["late-commands"];
  for (const c of late)
    assert.ok(
      typeof c === "string" || (Array.isArray(c) && c.every((a) => typeof a === "string")),
      "subiquity's schema: strings or lists of strings",
    );
  const target = scratchTarget();
  const r = await runLateCommands(substitute(late, autoinstallMap(target)));
  assert.ok(r.ok, `${JSON.stringify(r.command)}\n${r.stdout}\n${r.stderr}`);
  assertInstalled(target);
  assert.equal(statSync(join(target, "etc/node-join/ca-auth.key")).mode & 0o777, 0o600);
  assert.equal(
    readFileSync(join(target, "etc/node-join/ca-auth.key"), "utf8"),
    `${ca.authKeyHex}\n`,
  );
  assertJoinedTarget(target);
});

test("autoinstall.yaml (B, uncommented): late-commands leave a first-boot unit that systemd accepts, enabled, and do not join", async () => {
  const lines = readFileSync(AUTOINSTALL, "utf8").split("\n");
  let block: "" | "A" | "B" = "";
  const edited = lines
    .map((l) => {
      const marker = /# --- ([AB]) (begins|ends) ---/.exec(l);
      if (marker) {
        block = marker[2] === "begins" ? (marker[1] as "A" | "B") : "";
        return l;
      }
      if (block === "A") return l.replace(/^(\s*)/, "$1# ");
      if (block === "B") return l.replace(/^(\s*)# ?/, "$1");
      return l;
    })
    .join("\n");
  const dir = tempRoot("nj-ai-");
  writeFileSync(join(dir, "autoinstall-b.yaml"), edited);
  const valid = schema(join(dir, "autoinstall-b.yaml"));
  assert.equal(valid.status, 0, valid.stdout + valid.stderr);
  const late = YAML.parse(edited).autoinstall["late-commands"] as RunCmd[];
  assert.ok(!late.some(isJoin), "A is commented out");
  const target = scratchTarget();
  const r = await runLateCommands(substitute(late, autoinstallMap(target)));
  assert.ok(r.ok, `${JSON.stringify(r.command)}\n${r.stdout}\n${r.stderr}`);
  assertInstalled(target);
  assert.ok(!existsSync(join(target, "etc/kubernetes")), "no join during the install");
  const unitFile = join(target, "etc/systemd/system/node-join-firstboot.service");
  const unit = readFileSync(unitFile, "utf8");
  assert.equal(
    readlinkSync(
      join(target, "etc/systemd/system/multi-user.target.wants/node-join-firstboot.service"),
    ),
    "/etc/systemd/system/node-join-firstboot.service",
  );
  for (const line of [
    "Type=oneshot",
    "Wants=network-online.target",
    "ConditionPathExists=!/etc/kubernetes/kubelet.conf",
    "WantedBy=multi-user.target",
  ]) {
    assert.ok(unit.split("\n").includes(line), line);
  }
  const exec = systemdWords(/^ExecStart=(.*)$/m.exec(unit)![1]!);
  assert.deepEqual(exec.slice(0, 2), ["/usr/local/bin/node-join", "join"]);
  assert.equal(
    exec[exec.indexOf("--ca-auth-key-file") + 1],
    "/etc/node-join/ca-auth.key",
    "the installed system's path",
  );
  // systemd-analyze verify needs the ExecStart binary to exist: verify a copy pointing at the
  // installed one
  const copy = join(dir, "node-join-firstboot.service");
  writeFileSync(
    copy,
    unit.replace(
      "ExecStart=/usr/local/bin/node-join",
      `ExecStart=${join(target, "usr/local/bin/node-join")}`,
    ),
  );
  const verify = spawnSync("systemd-analyze", ["verify", copy], { encoding: "utf8" });
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(`${verify.stdout}${verify.stderr}`.trim(), "");
});
