// The pre-flight against a real `cfssl serve` on loopback, run as a user does: secret files are
// checked before any request to the CA, a refused auth key is named as such, and `--dry-run`
// checks what a real run checks (settings, secrets, the CA reachable and matching its pin) and
// lists every file it would write, changing nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { nodeRoot, startCfssl, useCfssl } from "../helpers/cfssl.js";
import { json, runCli } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { startStepCa, stepCaLog, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";

const ca = useCfssl();

const newRoot = () => nodeRoot(ca, "nj-preflight-");

function joinArgs(root: string, keyFile: string, extra: string[] = []): string[] {
  return [...cfsslWorkerJoin(root, ca, { "ca-auth-key-file": keyFile, ip: "10.0.0.21" }), ...extra];
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const FLAG = "--ca-auth-key-file, config cas.kubernetes.authKeyFile";
/** The kubelet's timestamped file names, for comparing listings. */
const unstamp = (s: string) => s.replace(/-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\.pem/g, "-<stamp>.pem");

test("a missing, 0644 or non-hex auth key is exit 2 naming the file, before any request to the CA", async () => {
  const cases: [string, (f: string) => void, (f: string) => string][] = [
    [
      "missing",
      (f) => rmSync(f),
      (f) => `CA kubernetes: CA auth key file ${f} does not exist (${FLAG})`,
    ],
    [
      "0644",
      (f) => ca.writeAuthKey(f, 0o644),
      (f) =>
        `CA auth key file ${f} is readable by group or others (mode 0644); fix with: chmod 600 ${f}`,
    ],
    [
      "not hex",
      (f) => writeFileSync(f, "correct horse battery staple\n", { mode: 0o600 }),
      (f) =>
        `CA kubernetes: CA auth key file ${f} (${FLAG}) is not hex (CFSSL auth keys are hex strings, as in the CA's config)`,
    ],
  ];
  // A CA that is down: had the secret been read after the first request, the run would retry
  // it until --timeout and end with exit 3.
  const down = await startCfssl();
  await down.stop();
  const toDown = (a: string) => (a === ca.url ? down.url : a === ca.pin ? down.pin : a);
  for (const [what, make, message] of cases) {
    const variants: [string, (root: string, keyFile: string) => string[]][] = [
      ["join", (root, keyFile) => joinArgs(root, keyFile)],
      ["join --dry-run", (root, keyFile) => joinArgs(root, keyFile, ["--dry-run"])],
      [
        "join against a CA that is down",
        (root, keyFile) => joinArgs(root, keyFile, ["--timeout", "60s"]).map(toDown),
      ],
    ];
    for (const [how, args] of variants) {
      const { root, keyFile } = newRoot();
      make(keyFile);
      const signs = ca.signRequests();
      const t0 = Date.now();
      const r = await expectFailure(
        args(root, keyFile),
        2,
        new RegExp(`${escape(message(keyFile))}$`, "m"),
        root,
      );
      assert.equal(
        r.stderr,
        `node-join: error: ${message(keyFile)}\n`,
        `${what}, ${how}: the error line and nothing before it (no "requesting" line)`,
      );
      assert.ok(Date.now() - t0 < 30_000, `${what}, ${how}: no retries before the check`);
      assert.equal(ca.signRequests(), signs, `${what}, ${how}: no CSR reached the CA`);
    }
  }
});

test("an auth key the CA refuses is exit 4 naming the file it was read from, never the key", async () => {
  const { root, keyFile } = newRoot();
  const wrong = "00112233445566778899aabbccddeeff";
  writeFileSync(keyFile, `${wrong}\n`, { mode: 0o600 });
  const r = await expectFailure(
    joinArgs(root, keyFile),
    4,
    new RegExp(
      `CA kubernetes \\(cfssl ${escape(ca.url)}\\) signing kubelet-client \\(profile client\\) refused: invalid token: ` +
        `the CA refused the auth key read from ${escape(keyFile)} \\(check that it is the key of profile "client" in the CA's config\\)$`,
      "m",
    ),
    root,
  );
  assert.ok(!r.stderr.includes(wrong) && !r.stdout.includes(wrong), "the key is never printed");
});

test("join --dry-run lists every file it would create on a fresh root, and changes nothing", async () => {
  const { root, keyFile } = newRoot();
  const before = snapshot(root);
  const signs = ca.signRequests();
  const r = await runCli(joinArgs(root, keyFile, ["--dry-run"]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.equal(
    unstamp(r.stdout),
    [
      "dry run: would request 2 certificate(s) and write 9 file(s) of worker node w1",
      "  would request kubelet-client: CN=system:node:w1 O=system:nodes (new)",
      "  would request kubelet-server: CN=system:node:w1 O=system:nodes SANs=w1,10.0.0.21 (new)",
      `  would create  0644 ${root}/etc/kubernetes/pki/ca.crt`,
      `  would create  0600 ${root}/var/lib/kubelet/pki/kubelet-client-<stamp>.pem`,
      `  would create  link ${root}/var/lib/kubelet/pki/kubelet-client-current.pem -> kubelet-client-<stamp>.pem`,
      `  would create  0600 ${root}/etc/kubernetes/kubelet.conf`,
      `  would create  0600 ${root}/var/lib/kubelet/pki/kubelet-server-<stamp>.pem`,
      `  would create  link ${root}/var/lib/kubelet/pki/kubelet-server-current.pem -> kubelet-server-<stamp>.pem`,
      `  would create  0644 ${root}/etc/kubernetes/kubelet.conf.d/50-node-join-serving.conf`,
      `  would create  0644 ${root}/etc/node-join/config.yaml`,
      `  would create  0600 ${root}/var/lib/node-join/state.json`,
      "  would install the renewal timer (node-join timer install)",
      "",
    ].join("\n"),
  );
  assert.equal(ca.signRequests(), signs, "no CSR sent");
  assert.deepEqual(diffSnapshots(before, snapshot(root)), [], "nothing on disk changed");

  const j = await runCli(joinArgs(root, keyFile, ["--dry-run", "--json"]));
  assert.equal(j.code, 0, j.stderr);
  const out = json<{
    changedFiles: string[];
    files: { path: string; action: string; mode: string; symlink?: string }[];
  }>(j);
  assert.deepEqual(
    out.files.map((f) => f.path),
    out.changedFiles,
  );
  assert.deepEqual(out.files[0], {
    path: `${root}/etc/kubernetes/pki/ca.crt`,
    action: "create",
    mode: "0644",
  });
  assert.deepEqual(diffSnapshots(before, snapshot(root)), [], "nothing on disk changed");
});

test("join --dry-run on a joined root: replace versus create, and nothing to do when nothing changed", async () => {
  const { root, keyFile } = newRoot();
  const joined = await runCli(joinArgs(root, keyFile));
  assert.equal(joined.code, 0, joined.stderr);
  const before = snapshot(root);
  const r = await runCli(joinArgs(root, keyFile, ["--dry-run", "--ip", "10.0.0.99"]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    unstamp(r.stdout),
    [
      "dry run: would request 1 certificate(s) and write 4 file(s) of worker node w1",
      "  would request kubelet-server: CN=system:node:w1 O=system:nodes SANs=w1,10.0.0.21,10.0.0.99 (SANs lack 10.0.0.99)",
      `  would create  0600 ${root}/var/lib/kubelet/pki/kubelet-server-<stamp>.pem`,
      `  would replace link ${root}/var/lib/kubelet/pki/kubelet-server-current.pem -> kubelet-server-<stamp>.pem`,
      `  would replace 0644 ${root}/etc/node-join/config.yaml`,
      `  would replace 0600 ${root}/var/lib/node-join/state.json`,
      // The join installed the renewal timer (a cron line on this root without systemd): in place,
      // so not listed.
      "",
    ].join("\n"),
  );
  const same = await runCli(joinArgs(root, keyFile, ["--dry-run"]));
  assert.equal(same.code, 0, same.stderr);
  assert.equal(
    same.stdout,
    "dry run: nothing to do: worker node w1 already has valid certificates matching its config\n",
  );
  assert.deepEqual(diffSnapshots(before, snapshot(root)), [], "nothing on disk changed");
});

test("join --dry-run fails as the join would: a wrong pin is exit 5, an unreachable CA exit 3 after --timeout", async () => {
  const { root, keyFile } = newRoot();
  const wrongPin = `sha256:${"0".repeat(64)}`;
  await expectFailure(
    joinArgs(root, keyFile, ["--dry-run"]).map((a) => (a === ca.pin ? wrongPin : a)),
    5,
    /CA kubernetes \(cfssl http:\/\/127\.0\.0\.1:\d+\): CA certificate pin sha256:[0-9a-f]{64} matches no --ca-cert-hash \(config key cas\.kubernetes\.certHashes\); refusing to trust it$/m,
    root,
  );
  const down = await startCfssl();
  await down.stop();
  const t0 = Date.now();
  await expectFailure(
    joinArgs(root, keyFile, ["--dry-run", "--timeout", "2s"]).map((a) =>
      a === ca.url ? down.url : a === ca.pin ? down.pin : a,
    ),
    3,
    new RegExp(`CA kubernetes \\(cfssl ${escape(down.url)}\\) unreachable: .*ECONNREFUSED`, "m"),
    root,
  );
  assert.ok(Date.now() - t0 >= 1_500, "it retried until the timeout");
});

test("renew --dry-run checks the CA of what is due and lists the files it would write", async () => {
  const { root, keyFile } = newRoot();
  assert.equal((await runCli(joinArgs(root, keyFile))).code, 0);
  const before = snapshot(root);
  const signs = ca.signRequests();
  const r = await runCli(["renew", "--root", root, "--dry-run", "--force"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    unstamp(r.stdout),
    [
      "dry run: would renew kubelet-client, kubelet-server",
      "  would renew kubelet-client: forced",
      "  would renew kubelet-server: forced",
      `  would create  0600 ${root}/var/lib/kubelet/pki/kubelet-client-<stamp>.pem`,
      `  would replace link ${root}/var/lib/kubelet/pki/kubelet-client-current.pem -> kubelet-client-<stamp>.pem`,
      `  would create  0600 ${root}/var/lib/kubelet/pki/kubelet-server-<stamp>.pem`,
      `  would replace link ${root}/var/lib/kubelet/pki/kubelet-server-current.pem -> kubelet-server-<stamp>.pem`,
      `  would replace 0600 ${root}/var/lib/node-join/state.json`,
      "",
    ].join("\n"),
  );
  assert.equal(ca.signRequests(), signs, "no CSR sent");
  assert.deepEqual(diffSnapshots(before, snapshot(root)), [], "nothing on disk changed");
  // The auth key the renewal would use is checked as well.
  writeFileSync(keyFile, "not hex\n", { mode: 0o600 });
  await expectFailure(
    ["renew", "--root", root, "--dry-run", "--force"],
    2,
    new RegExp(
      `CA kubernetes: CA auth key file ${escape(keyFile)} \\(${escape(FLAG)}\\) is not hex`,
      "m",
    ),
    root,
  );
});

test("step-ca: join --dry-run decrypts the provisioner key or routes the tokens, spends none, and a wrong password is exit 2", async () => {
  const step = await startStepCa();
  try {
    const root = tempRoot("nj-preflight-step-");
    mkdirSync(join(root, "etc/node-join"), { recursive: true });
    const secret = (name: string, text: string) => {
      const file = join(root, "etc/node-join", name);
      writeFileSync(file, text, { mode: 0o600 });
      return file;
    };
    const sans = ["w1", "10.0.0.21"];
    const tokens = secret(
      "ca.tokens",
      `${await step.mintToken("workers", "system:node:w1", sans)}\n${await step.mintToken("workers", "system:node:w1", [])}\n`,
    );
    const signs = () => stepCaSignRequests(step);
    const before = signs();
    const args = stepWorkerJoin(root, step, { "ca-token-file": tokens });
    const dry = await runCli([...args, "--dry-run"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /^dry run: would request 2 certificate\(s\) and write 9 file\(s\) of worker node w1\n/,
    );
    assert.equal(signs(), before, "no CSR, no token spent");
    const real = await runCli(args);
    assert.equal(real.code, 0, `the tokens are still good: ${real.stderr}`);
    assert.equal(signs(), before + 2);

    const fresh = tempRoot("nj-preflight-step-");
    mkdirSync(join(fresh, "etc/node-join"), { recursive: true });
    const pw = join(fresh, "etc/node-join/workers.password");
    writeFileSync(pw, "not-the-password\n", { mode: 0o600 });
    await expectFailure(
      [
        ...stepWorkerJoin(fresh, step, {
          "ca-provisioner": "workers",
          "ca-password-file": pw,
        }),
        "--dry-run",
      ],
      2,
      /cannot decrypt the key of provisioner "workers" with the password from .*workers\.password: wrong password/,
      fresh,
    );
    assert.equal(signs(), before + 2, "no CSR sent");
  } finally {
    await step.stop();
  }
});

/** The CSRs a step-ca was sent (its request log). */
function stepCaSignRequests(ca: StepCaHandle): number {
  return (stepCaLog(ca).match(/path=\/1\.0\/sign /g) ?? []).length;
}
