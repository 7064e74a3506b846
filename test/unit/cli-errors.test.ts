// Every failure as a user meets it: main() in process, the exact stderr line and exit code, and
// with --json the same error object on stdout. commander's own errors, the flag a CA's message
// names, the hints for known mistakes, and --version / bare node-join.
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BackendContext, CaBackend } from "../../agent/ca/backend.js";
import { withoutSecrets } from "../../agent/ca/index.js";
import { authenticateCa } from "../../agent/ca/trust.js";
import { main } from "../../agent/cli/main.js";
import { versionLine } from "../../agent/common/version.js";
import { runHooks } from "../../agent/ops/hooks.js";
import { CA_NAMES, CAS, type CaName } from "../../agent/pki/cas.js";
import { certPin } from "../../agent/pki/x509.js";
import { FakeCa, fakeClock } from "../helpers/fake-ca.js";
import { tempRoot } from "../helpers/fs.js";
import { writeSaKeys } from "../helpers/sa-keys.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], seams: Parameters<typeof main>[2] = {}): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const code = await main(
    argv,
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env: {} },
    seams,
  );
  return { code, stdout, stderr };
}

/**
 * Exactly one line on stderr, the error, and exit `code`; with --json (where the command takes it)
 * the object on stdout.
 */
async function expectError(
  argv: string[],
  code: number,
  message: string,
  json = true,
): Promise<void> {
  const r = await run(argv);
  assert.deepEqual(
    r,
    { code, stdout: "", stderr: `node-join: error: ${message}\n` },
    argv.join(" "),
  );
  if (!json) return;
  const j = await run([...argv, "--json"]);
  assert.equal(j.code, code);
  assert.equal(j.stderr, `node-join: error: ${message}\n`);
  assert.equal(j.stdout, `${JSON.stringify({ ok: false, exitCode: code, error: message })}\n`);
}

const PIN = `sha256:${"ab".repeat(32)}`;

/** A worker's join under `root` against the CA at `caUrl`, with `extra` flags. */
const workerJoin = (root: string, caUrl: string, ...extra: string[]): string[] => [
  "join",
  "--root",
  root,
  "--api-server",
  "https://10.0.0.1:6443",
  "--ca-url",
  caUrl,
  "--node-name",
  "w1",
  "--ip",
  "10.0.0.21",
  "--no-timer",
  ...extra,
];
const JOIN = ["join", "--api-server", "https://10.0.0.1:6443", "--ca-url", "http://ca.invalid:1"];

test("commander's errors are one prefixed line, its suggestion folded in, exit 2", async () => {
  await expectError(
    [...JOIN, "--ca-ulr", "http://x"],
    2,
    "unknown option '--ca-ulr' (did you mean --ca-url?)",
  );
  await expectError(
    ["timer", "install", "--scheduler", "launchd"],
    2,
    "option '--scheduler <kind>' argument 'launchd' is invalid. Allowed choices are auto, systemd, cron.",
  );
  await expectError(
    ["join", "extra"],
    2,
    "too many arguments for 'join'. Expected 0 arguments but got 1.",
  );
  await expectError(["jion"], 2, "unknown command 'jion' (did you mean join?)");
  await expectError(["status", "--rot", "/x"], 2, "unknown option '--rot' (did you mean --root?)");
  await expectError(["status", "--bogus"], 2, "unknown option '--bogus'");
  // A flag cut short is too many edits away for commander's suggestion: the flags it begins.
  await expectError(
    [...JOIN, "--ca-auth-key", "/k"],
    2,
    "unknown option '--ca-auth-key' (did you mean --ca-auth-key-file?)",
  );
  await expectError(
    ["trust", "add", "--ca", "kubernetes", "--ca-fil", "/f"],
    2,
    "unknown option '--ca-fil' (did you mean --ca-file?)",
  );
});

test("--version and -V print the version line, as node-join version does; bare node-join prints the help on stderr, exit 2", async () => {
  for (const argv of [["--version"], ["-V"], ["version"]])
    assert.deepEqual(await run(argv), { code: 0, stdout: `${versionLine()}\n`, stderr: "" });
  const bare = await run([]);
  assert.equal(bare.code, 2);
  assert.equal(bare.stdout, "");
  assert.match(bare.stderr, /^Usage: node-join \[options\] \[command\]\n/);
  assert.match(bare.stderr, /\n {2}-V, --version +print the version line/);
  assert.match(bare.stderr, /\nExit codes:\n/);
  assert.doesNotMatch(bare.stderr, /error:/);
  for (const argv of [["--help"], ["help"]])
    assert.deepEqual(
      await run(argv),
      { code: 0, stdout: bare.stderr, stderr: "" },
      "the same help, on stdout when asked for",
    );
  const timer = await run(["timer"]);
  assert.equal(timer.code, 2);
  assert.match(timer.stderr, /^Usage: node-join timer \[options\] \[command\]\n/);
  assert.deepEqual(await run(["help", "timer"]), { code: 0, stdout: timer.stderr, stderr: "" });
});

test("a URL without scheme, a comma in a repeatable flag, a mistyped config key: the hint on the same line", async () => {
  await expectError(
    ["join", "--api-server", "10.0.0.10:6443"],
    2,
    "--api-server: is not a URL: did you mean https://10.0.0.10:6443?",
  );
  await expectError(
    ["join", "--api-server", "https://10.0.0.10:6443", "--ca-url", "ca.example:8888"],
    2,
    "--ca-url: is not a URL: did you mean http://ca.example:8888 or https://ca.example:8888?",
  );
  await expectError(
    [...JOIN, "--ip", "10.0.0.5,10.0.0.6"],
    2,
    '--ip: "10.0.0.5,10.0.0.6": one value per flag: repeat --ip for each',
  );
  await expectError(
    [...JOIN, "--etcd-ca-cert-hash", `${PIN},${PIN}`],
    2,
    `--etcd-ca-cert-hash: "${PIN},${PIN}": one value per flag: repeat --etcd-ca-cert-hash for each`,
  );
  const dir = tempRoot("nj-cli-errors-");
  const config = join(dir, "config.yaml");
  for (const [text, message] of [
    ["nodeNmae: n1\n", "unknown key nodeNmae: did you mean nodeName?"],
    [
      "cas:\n  frontproxy:\n    url: http://x\n",
      "unknown key cas.frontproxy: did you mean cas.frontProxy?",
    ],
    [
      "cas:\n  etcd:\n    certHash: []\n",
      "unknown key cas.etcd.certHash: did you mean cas.etcd.certHashes?",
    ],
    ["controlPlane:\n  bogus: 1\n", "unknown key controlPlane.bogus"],
    // The parser's position ends the line, not a colon before the excerpt it leaves out.
    [
      "nodeName: [n1\n",
      "not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1",
    ],
  ] as const) {
    writeFileSync(config, text, { mode: 0o600 });
    await expectError(
      ["join", "--root", dir, "--config", config],
      2,
      `config ${config}: ${message}`,
    );
  }
});

test("restart-static-pods with an unknown component is a usage error naming the known ones", async () => {
  const root = tempRoot("nj-cli-errors-");
  await expectError(
    ["restart-static-pods", "--root", root, "bogus"],
    2,
    'unknown static pod "bogus" (known: kube-apiserver, etcd, kube-controller-manager, kube-scheduler)',
    false,
  );
  assert.deepEqual(await run(["restart-static-pods", "--root", root, "--wait", "0s", "etcd"]), {
    code: 0,
    stdout: "restarted static pods: none\n",
    stderr: "",
  });
});

test("a CA that cannot be reached: the server once, the system error once (connection refused (ECONNREFUSED))", async () => {
  const root = tempRoot("nj-cli-errors-");
  const r = await run(
    workerJoin(root, "http://127.0.0.1:1", "--ca-cert-hash", PIN, "--timeout", "1s"),
    // The retries wait on a clock that sleeping advances: the same attempts, at once.
    { clock: fakeClock() },
  );
  assert.equal(r.code, 3, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(
    lines.at(-1),
    "node-join: error: CA kubernetes (cfssl http://127.0.0.1:1) unreachable: connection refused (ECONNREFUSED)",
  );
  assert.equal(lines.filter((l) => l.includes("error:")).length, 1);
  for (const l of lines.filter((l) => l.includes("attempt")))
    assert.match(
      l,
      /^node-join: CA kubernetes \(cfssl http:\/\/127\.0\.0\.1:1\): attempt \d+ failed \(connection refused \(ECONNREFUSED\)\); retrying in/,
    );
});

test("a non-root run that meets EACCES: the errno once, and the hint to run as root or use --root", async () => {
  const dir = tempRoot("nj-cli-errors-");
  chmodSync(dir, 0o755);
  const config = join(dir, "config.yaml");
  writeFileSync(config, "nodeName: n1\n", { mode: 0o600 });
  const asRoot = process.geteuid?.() === 0;
  // As root, the run itself becomes nobody (65534) for the while; as anyone else, the file is
  // theirs but unreadable.
  if (!asRoot) chmodSync(config, 0o000);
  const argv = ["join", "--root", dir, "--config", config];
  if (asRoot) process.seteuid!(65534);
  let r: Run;
  try {
    r = await run(argv);
  } finally {
    if (asRoot) process.seteuid!(0);
  }
  assert.deepEqual(r, {
    code: 6,
    stdout: "",
    stderr: `node-join: error: cannot read ${config}: permission denied (EACCES): run as root, or use --root\n`,
  });
});

test("renew with a configured hook that does not exist: exit 1, the hook 'not found' (not 'exited 127')", async () => {
  const clock = fakeClock();
  const cas = await fakeCas(clock);
  const seams = { backend: pinChecked(cas), clock };
  const root = tempRoot("nj-cli-errors-");
  const joined = await run(
    workerJoin(root, "http://ca.invalid:1", "--ca-cert-hash", certPin(cas.kubernetes.anchor)),
    seams,
  );
  assert.equal(joined.code, 0, joined.stderr);
  appendFileSync(
    join(root, "etc/node-join/config.yaml"),
    "hooks:\n  postRenew:\n    - [/nonexistent/nj-hook, --now]\n",
  );
  const r = await run(["renew", "--root", root, "--force"], seams);
  assert.equal(r.code, 1, r.stderr);
  assert.deepEqual(
    r.stderr.split("\n").filter((l) => l.includes("error:")),
    [
      'node-join: error: renewed kubelet-client, kubelet-server, but hook "/nonexistent/nj-hook --now": /nonexistent/nj-hook not found',
    ],
  );
});

test("a hook that does not exist is 'not found', not 'exited 127'; a shell's 127 says a command was not found; one that cannot start says why", () => {
  const notExecutable = join(tempRoot("nj-cli-errors-"), "hook.sh");
  writeFileSync(notExecutable, "#!/bin/sh\n", { mode: 0o644 });
  const logs: string[] = [];
  assert.throws(
    () =>
      runHooks(
        [
          ["/nonexistent/nj-hook", "--now"],
          ["sh", "-c", "exit 127"],
          ["sh", "-c", "exit 3"],
          [notExecutable],
        ],
        ["kubelet-client"],
        withoutSecrets({ PATH: process.env.PATH }),
        "/",
        (l) => logs.push(l),
      ),
    {
      message:
        'renewed kubelet-client, but hook "/nonexistent/nj-hook --now": /nonexistent/nj-hook not found; ' +
        'hook "sh -c exit 127" exited 127: a command it runs was not found; hook "sh -c exit 3" exited 3; ' +
        `hook "${notExecutable}" could not start: permission denied (EACCES)`,
    },
  );
  assert.deepEqual(logs, [
    "running hook: /nonexistent/nj-hook --now",
    "running hook: sh -c exit 127",
    "running hook: sh -c exit 3",
    `running hook: ${notExecutable}`,
  ]);
});

/** The three CAs, fake, on `clock`. */
async function fakeCas(clock: ReturnType<typeof fakeClock>): Promise<Record<CaName, FakeCa>> {
  const [kubernetes, frontProxy, etcd] = await Promise.all(
    ["kubernetes", "front-proxy", "etcd"].map((n) => FakeCa.create(n, clock)),
  );
  return { kubernetes: kubernetes!, frontProxy: frontProxy!, etcd: etcd! };
}

/** A fake CA whose answer goes through the real trust decision (agent/ca/trust.ts). */
function pinChecked(cas: Record<CaName, FakeCa>) {
  return (ctx: BackendContext): CaBackend => {
    const fake = cas[ctx.ca.name];
    return {
      description: fake.description,
      fetchCaBundle: async () =>
        authenticateCa(
          ctx.ca,
          await fake.fetchCaBundle(),
          ctx.settings,
          ctx.unsafeSkipCaVerification,
          fake.description,
          ctx.log,
        ),
      sign: (req) => fake.sign(req),
    };
  };
}

/**
 * A control plane's join under a new root (with the shared service-account pair in place) and
 * each CA's --…ca-cert-hash where `pin` gives one.
 */
function controlPlaneJoin(pin: (ca: CaName) => string | undefined): string[] {
  const root = tempRoot("nj-cli-errors-");
  const { key: saKey, pub: saPub } = writeSaKeys(join(root, "etc/node-join"));
  return [
    "join",
    "--root",
    root,
    "--role",
    "control-plane",
    "--api-server",
    "https://10.0.0.1:6443",
    "--ca-url",
    "http://ca.invalid:1",
    "--node-name",
    "cp1",
    "--ip",
    "10.0.0.21",
    "--sa-key-file",
    saKey,
    "--sa-pub-file",
    saPub,
    "--no-timer",
    ...CA_NAMES.flatMap((n) => {
      const p = pin(n);
      return p ? [`--${CAS[n].flagPrefix}ca-cert-hash`, p] : [];
    }),
  ];
}

test("a missing trust anchor names the CA's own flags and config keys, for each of the three CAs", async () => {
  for (const missing of CA_NAMES) {
    const p = CAS[missing].flagPrefix;
    await expectError(
      controlPlaneJoin((n) => (n === missing ? undefined : PIN)),
      2,
      `${CAS[missing].title}: no trust anchor: give --${p}ca-cert-hash sha256:<hex> or --${p}ca-file <pem> ` +
        `(config key cas.${missing}.certHashes or cas.${missing}.caFile) (or --unsafe-skip-ca-verification)`,
    );
  }
});

test("a wrong pin names the CA's own flag and config key, for each of the three CAs", async () => {
  const clock = fakeClock();
  const cas = await fakeCas(clock);
  const pins = Object.fromEntries(CA_NAMES.map((n) => [n, certPin(cas[n].anchor)])) as Record<
    CaName,
    string
  >;
  for (const wrong of CA_NAMES) {
    const argv = controlPlaneJoin((n) => (n === wrong ? PIN : pins[n]));
    const r = await run(argv, { backend: pinChecked(cas), clock });
    assert.equal(r.code, 5, r.stderr);
    const flag = `--${CAS[wrong].flagPrefix}ca-cert-hash`;
    assert.deepEqual(
      r.stderr.split("\n").filter((l) => l.includes("error:")),
      [
        `node-join: error: CA ${CAS[wrong].display} (fake): CA certificate pin ${pins[wrong]} matches no ${flag} (config key cas.${wrong}.certHashes); refusing to trust it`,
      ],
    );
  }
  // A CA file that is not there is found by the pre-flight, before any CA is asked: a usage error
  // naming the file, the flag and the config key, no errno text at all.
  const root = tempRoot("nj-cli-errors-");
  const r = await run(workerJoin(root, "http://ca.invalid:1", "--ca-file", "/nonexistent/ca.pem"), {
    backend: pinChecked(cas),
    clock,
  });
  assert.equal(r.code, 2, r.stderr);
  assert.deepEqual(
    r.stderr.split("\n").filter((l) => l.includes("error:")),
    [
      "node-join: error: CA kubernetes: CA file /nonexistent/ca.pem does not exist (--ca-file, config cas.kubernetes.caFile)",
    ],
  );
});
