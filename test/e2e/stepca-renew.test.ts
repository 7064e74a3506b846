// `node-join renew` against a real step-ca: rekey over mTLS with a fresh key (no enrolment secret
// on the node), renew with the same key (renew.reuseKey), and an expired certificate.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { json, runCli } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import { startStepCa, stepCaLog, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";

let ca: StepCaHandle;
before(async () => {
  ca = await startStepCa({
    provisioners: [
      { name: "workers", organization: ["system:nodes"] },
      // Certificates that expire while the test waits (step-ca backdates NotBefore by a minute).
      {
        name: "brief",
        organization: ["system:nodes"],
        claims: { minTLSCertDuration: "1s", defaultTLSCertDuration: "4s" },
      },
    ],
  });
});
after(async () => ca?.stop());

const PKI = "var/lib/kubelet/pki";
const KINDS = ["kubelet-client", "kubelet-server"] as const;
const count = (path: string) =>
  (stepCaLog(ca).match(new RegExp(`path=${path.replace(/\//g, "\\/")} `, "g")) ?? []).length;
const password = (name: string) => ca.provisioners.find((p) => p.name === name)!.password;

function joinArgs(root: string, extra: string[]): string[] {
  return [...stepWorkerJoin(root, ca, { "node-name": "r1", ip: "10.0.0.31" }), ...extra];
}

interface Installed {
  leaf: string;
  key: string;
  serial: string;
}

function installed(root: string, kind: string): Installed {
  const text = readFileSync(join(root, PKI, `${kind}-current.pem`), "utf8");
  const certs = text.match(/-----BEGIN CERTIFICATE-----\n[\s\S]*?-----END CERTIFICATE-----\n/g)!;
  assert.equal(certs.length, 2, `${kind}: leaf and intermediate`);
  assert.ok(
    opensslVerifies(certs.join(""), join(root, "etc/kubernetes/pki/ca.crt")),
    `${kind} chains to the root`,
  );
  assert.deepEqual(opensslInfo(certs[0]!).o, ["system:nodes"]);
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/.exec(
    text,
  )![0];
  const serial = /^serial=(\w+)/m.exec(openssl(["x509", "-noout", "-serial"], certs[0]!))![1]!;
  return { leaf: certs[0]!, key, serial };
}

function openssl(args: string[], input: string): string {
  return execFileSync("openssl", args, { input }).toString();
}

/** Files under the root that changed, minus the metrics textfile (which records every run). */
const changedFiles = (a: ReturnType<typeof snapshot>, root: string) =>
  diffSnapshots(a, snapshot(root)).filter((f) => !f.startsWith("var/lib/node_exporter"));

let root = "";

test("renew rekeys over mTLS: new keys and serials, no token or password on the node, step-ca logs a rekey", async () => {
  root = tempRoot("nj-step-renew-");
  // The join's tokens live only in its environment: nothing secret is left on the node.
  const tokens = [
    await ca.mintToken("workers", "system:node:r1", ["r1", "10.0.0.31"]),
    await ca.mintToken("workers", "system:node:r1", []),
  ];
  const j = await runCli(joinArgs(root, []), { env: { NODE_JOIN_CA_TOKEN: tokens.join("\n") } });
  assert.equal(j.code, 0, j.stderr);
  const before = Object.fromEntries(KINDS.map((k) => [k, installed(root, k)]));
  const rekeys = count("/1.0/rekey");
  const signs = count("/1.0/sign");

  const r = await runCli(["renew", "--root", root, "--force", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    json<{ renewed: { kind: string }[] }>(r)
      .renewed.map((x) => x.kind)
      .sort(),
    [...KINDS],
  );
  assert.equal(count("/1.0/rekey") - rekeys, 2, "two rekeys");
  assert.equal(count("/1.0/sign"), signs, "no enrolment");
  for (const k of KINDS) {
    const now = installed(root, k);
    assert.notEqual(now.key, before[k]!.key, `${k}: a fresh key`);
    assert.notEqual(now.serial, before[k]!.serial, `${k}: a new serial`);
  }
  const config = readFileSync(join(root, "etc/node-join/config.yaml"), "utf8");
  assert.doesNotMatch(config, /token|password/i);
  for (const t of tokens) assert.ok(!config.includes(t));
});

test("renew with renew.reuseKey keeps the key and uses /1.0/renew", async () => {
  assert.ok(root, "the previous test joined");
  appendFileSync(join(root, "etc/node-join/config.yaml"), "renew:\n  reuseKey: true\n");
  const before = Object.fromEntries(KINDS.map((k) => [k, installed(root, k)]));
  const renews = count("/1.0/renew");
  const r = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(count("/1.0/renew") - renews, 2, "two renews");
  for (const k of KINDS) {
    const now = installed(root, k);
    assert.equal(now.key, before[k]!.key, `${k}: the same key`);
    assert.notEqual(now.serial, before[k]!.serial, `${k}: a new serial`);
  }
});

test("an expired certificate without an enrolment secret: exit 4 saying what to provide, nothing changed; with one it enrols again", async () => {
  const r0 = tempRoot("nj-step-renew-");
  const j = await runCli(joinArgs(r0, ["--ca-provisioner", "brief"]), {
    env: { NODE_JOIN_CA_PASSWORD: password("brief") },
  });
  assert.equal(j.code, 0, j.stderr);
  const notAfter = new Date(notAfterOf(installed(r0, "kubelet-client").leaf));
  await new Promise((res) => setTimeout(res, Math.max(0, notAfter.getTime() - Date.now()) + 1500));

  const snap = snapshot(r0);
  const signs = count("/1.0/sign");
  const r = await runCli(["renew", "--root", r0, "--json"]);
  assert.equal(r.code, 4, r.stderr);
  assert.match(
    r.stderr,
    /node-join: error: CA kubernetes \(step-ca https:\/\/127\.0\.0\.1:\d+\): kubelet-\w+ expired on \d{4}-\d\d-\d\dT[\d:.]+Z and an expired certificate cannot authenticate the mTLS renewal, so it cannot be renewed: give a one-time token for it \(--ca-token-file or NODE_JOIN_CA_TOKEN\) or the provisioner password \(--ca-provisioner with --ca-password-file or NODE_JOIN_CA_PASSWORD\)/,
  );
  assert.deepEqual(changedFiles(snap, r0), [], "nothing changed");
  assert.equal(count("/1.0/sign"), signs, "nothing was sent");

  const ok = await runCli(["renew", "--root", r0, "--json"], {
    env: { NODE_JOIN_CA_PASSWORD: password("brief") },
  });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /expired on .*: enrolling kubelet-client again/);
  assert.equal(count("/1.0/sign") - signs, 2, "enrolled again with minted tokens");
  assert.ok(new Date(notAfterOf(installed(r0, "kubelet-client").leaf)).getTime() > Date.now());
});

function notAfterOf(pem: string): string {
  return /^notAfter=(.*)$/m.exec(openssl(["x509", "-noout", "-enddate"], pem))![1]!;
}
