// `node-join renew` against a real step-ca: rekey over mTLS with a fresh key (no enrolment secret
// on the node), renew with the same key (renew.reuseKey), the token renewal through a
// TLS-terminating proxy, and an expired certificate (renewable after expiry or not).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { json, runCli } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import { expiringProvisioners, useStepCa, stepCaLog, stepWorkerJoin } from "../helpers/stepca.js";
import { useTlsProxy } from "../helpers/tls-proxy.js";

const ca = useStepCa({
  provisioners: [
    { name: "workers", organization: ["system:nodes"] },
    // Certificates that expire while the test waits (step-ca backdates NotBefore by a minute).
    ...expiringProvisioners("4s"),
  ],
});
const proxy = useTlsProxy(ca);

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

test("an expired certificate its provisioner does not renew after expiry, without an enrolment secret: exit 4 saying so and what to provide, nothing changed; with one it enrols again", async () => {
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
    /\nnode-join: error: CA kubernetes \(step-ca https:\/\/127\.0\.0\.1:\d+\): kubelet-\w+ expired on \d{4}-\d\d-\d\dT[\d:.]+Z and the CA refused to renew it with a token signed by its key \(HTTP 401\): its provisioner does not allow renewal after expiry \(claim allowRenewalAfterExpiry\), or the certificate was revoked, so it cannot be renewed: give a one-time token for it \(--ca-token-file or NODE_JOIN_CA_TOKEN\) or the provisioner password \(--ca-provisioner with --ca-password-file or NODE_JOIN_CA_PASSWORD\) or the machine certificate \(--ca-x5c-cert with --ca-x5c-key\), then renew again\n$/,
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

/** The config file's kubernetes CA with one more setting (config cas.kubernetes.<key>). */
function setCaKey(root: string, key: string, value: string): void {
  const file = join(root, "etc/node-join/config.yaml");
  const text = readFileSync(file, "utf8");
  const next = text.replace(/^( {4})type: step-ca\n/m, `$1type: step-ca\n$1${key}: ${value}\n`);
  assert.notEqual(next, text, "the config names the kubernetes CA's type");
  writeFileSync(file, next);
}

test("behind a TLS-terminating proxy: renew falls back to a token signed by the current key and keeps the key; renewAuth token goes straight to it; mtls fails in one line naming the setting", async () => {
  const r0 = tempRoot("nj-step-renew-");
  const j = await runCli(
    [
      ...stepWorkerJoin(
        r0,
        { ...ca, url: proxy.url },
        { "node-name": "p1", ip: "10.0.0.32", "ca-tls-file": proxy.tlsCaFile },
      ),
      "--ca-provisioner",
      "workers",
    ],
    { env: { NODE_JOIN_CA_PASSWORD: password("workers") } },
  );
  assert.equal(j.code, 0, j.stderr);
  const before = Object.fromEntries(KINDS.map((k) => [k, installed(r0, k)]));
  const renews = count("/1.0/renew");

  const r = await runCli(["renew", "--root", r0, "--force"]);
  assert.equal(r.code, 0, r.stderr);
  const note =
    "renewed with a token signed by its key as mTLS was refused: the key is kept, step-ca has no token rekey";
  const lines = r.stdout.trimEnd().split("\n");
  assert.equal(lines[0], "renewed 2: kubelet-client, kubelet-server");
  for (const [i, k] of KINDS.entries()) {
    const now = installed(r0, k);
    assert.equal(now.key, before[k]!.key, `${k}: the same key`);
    assert.notEqual(now.serial, before[k]!.serial, `${k}: a new serial`);
    assert.match(
      lines[i + 1]!,
      new RegExp(`^  renewed ${k}: forced \\(${note}\\) -> serial \\w+, expires \\S+$`),
    );
  }
  assert.match(
    r.stderr,
    /rekeying kubelet-\w+ over mTLS: the CA did not get the client certificate \(HTTP 400: The request could not be completed: missing client certificate\.\): renewing with a token signed by its key instead/,
  );
  assert.equal(count("/1.0/renew") - renews, 2, "two token renewals reached step-ca");

  setCaKey(r0, "renewAuth", "token");
  const t = await runCli(["renew", "--root", r0, "--force"]);
  assert.equal(t.code, 0, t.stderr);
  assert.doesNotMatch(t.stderr, /over mTLS/, "no mTLS attempt");
  assert.match(
    t.stdout,
    /^ {2}renewed kubelet-client: forced \(renewed with a token signed by its key: the key is kept, step-ca has no token rekey\) -> serial/m,
  );

  const cfg = join(r0, "etc/node-join/config.yaml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace("renewAuth: token", "renewAuth: mtls"));
  const snap = snapshot(r0);
  const m = await runCli(["renew", "--root", r0, "--force"]);
  assert.equal(m.code, 4, m.stderr);
  assert.match(
    m.stderr,
    new RegExp(
      `\\nnode-join: error: CA kubernetes \\(step-ca ${proxy.url.replace(/\./g, "\\.")}\\) rekeying kubelet-(client|server) over mTLS: the CA did not get the client certificate \\(HTTP 400: The request could not be completed: missing client certificate\\.\\): a TLS-terminating proxy in front of step-ca\\? set --ca-renew-auth \\(config cas\\.kubernetes\\.renewAuth\\) to token or auto to renew with a token signed by the current key\\n$`,
    ),
  );
  assert.deepEqual(changedFiles(snap, r0), [], "nothing changed");
});

test("an expired certificate whose provisioner allows renewal after expiry is renewed with a token, no enrolment secret on the node", async () => {
  const r0 = tempRoot("nj-step-renew-");
  const j = await runCli(joinArgs(r0, ["--ca-provisioner", "brief-renewable"]), {
    env: { NODE_JOIN_CA_PASSWORD: password("brief-renewable") },
  });
  assert.equal(j.code, 0, j.stderr);
  const before = installed(r0, "kubelet-client");
  const notAfter = new Date(notAfterOf(before.leaf));
  await new Promise((res) => setTimeout(res, Math.max(0, notAfter.getTime() - Date.now()) + 1500));
  const signs = count("/1.0/sign");
  const r = await runCli(["renew", "--root", r0]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^renewed 2: kubelet-client, kubelet-server \(kubelet-client, kubelet-server had expired\)\n/,
  );
  assert.match(
    r.stdout,
    /^ {2}renewed kubelet-client: \w[^(]* \(renewed with a token signed by its key: the key is kept, step-ca has no token rekey\) -> serial/m,
  );
  assert.equal(count("/1.0/sign"), signs, "no enrolment");
  const now = installed(r0, "kubelet-client");
  assert.equal(now.key, before.key, "the same key");
  assert.ok(new Date(notAfterOf(now.leaf)).getTime() > Date.now());
});

function notAfterOf(pem: string): string {
  return /^notAfter=(.*)$/m.exec(openssl(["x509", "-noout", "-enddate"], pem))![1]!;
}
