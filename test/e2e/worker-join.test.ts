// Worker join against a real `cfssl serve` on loopback, run as a separate process like a user does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  lstatSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
  readdirSync,
} from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin, flags } from "../../scripts/lib/args.js";
import { DEFAULT_PROFILES, nodeRoot, startCfssl, useCfssl, w1JoinArgs } from "../helpers/cfssl.js";
import { json, runCli } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { expectFailure } from "../helpers/expect.js";
import { kubectlView } from "../helpers/kubectl.js";

const ca = useCfssl();

const newRoot = () => nodeRoot(ca);
const joinArgs = (root: string, keyFile: string, extra: string[] = []) =>
  w1JoinArgs(ca, root, keyFile, extra);

/** The certificate part of a kubelet -current.pem (chain then key). */
function certOf(pemFile: string): string {
  const text = readFileSync(pemFile, "utf8");
  return text.slice(0, text.indexOf("-----BEGIN EC PRIVATE KEY-----"));
}

function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, { input, stdio: ["pipe", "pipe", "pipe"] }).toString();
}

test("join installs verified kubelet certificates, kubelet.conf and ca.crt with kubeadm's modes", async () => {
  const { root, keyFile } = newRoot();
  const r = await runCli(joinArgs(root, keyFile, ["--json"]));
  assert.equal(r.code, 0, r.stderr);
  const out = json<{ ok: boolean; issued: { kind: string }[]; nodeName: string }>(r);
  assert.equal(out.ok, true);
  assert.deepEqual(
    out.issued.map((i) => i.kind),
    ["kubelet-client", "kubelet-server"],
  );

  const pki = join(root, "var/lib/kubelet/pki");
  for (const prefix of ["kubelet-client", "kubelet-server"]) {
    const link = join(pki, `${prefix}-current.pem`);
    assert.ok(lstatSync(link).isSymbolicLink());
    const target = readlinkSync(link);
    assert.match(
      target,
      new RegExp(`^${prefix}-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}\\.pem$`),
      "target is a bare file name",
    );
    assert.equal(statSync(join(pki, target)).mode & 0o777, 0o600);
    const cert = certOf(link);
    const caFile = join(root, "etc/kubernetes/pki/ca.crt");
    assert.match(openssl(["verify", "-CAfile", caFile], cert), /OK/);
    const text = openssl(
      ["x509", "-noout", "-subject", "-ext", "subjectAltName,extendedKeyUsage"],
      cert,
    );
    assert.match(text, /subject=O\s*=\s*system:nodes, CN\s*=\s*system:node:w1/);
    if (prefix === "kubelet-server") {
      assert.match(text, /TLS Web Server Authentication/);
      assert.match(
        text,
        /DNS:w1, DNS:w1\.lab, IP Address:10\.0\.0\.21, IP Address:2001:DB8:0:0:0:0:0:21/,
      );
      assert.doesNotMatch(text, /TLS Web Client Authentication/);
    } else {
      assert.match(text, /TLS Web Client Authentication/);
      assert.doesNotMatch(text, /TLS Web Server Authentication/);
    }
  }
  assert.equal(statSync(join(root, "etc/kubernetes/pki/ca.crt")).mode & 0o777, 0o644);
  assert.equal(statSync(join(root, "etc/kubernetes/kubelet.conf")).mode & 0o777, 0o600);
  assert.equal(
    readFileSync(join(root, "etc/kubernetes/pki/ca.crt"), "utf8").trim(),
    ca.caPem.trim(),
  );

  // kubectl resolves the cluster, the user and (with --flatten) the symlinked credential files
  const kc = kubectlView<{
    "current-context": string;
    clusters: { cluster: { server: string } }[];
    users: { name: string; user: Record<string, string> }[];
  }>(join(root, "etc/kubernetes/kubelet.conf"));
  assert.equal(kc["current-context"], "system:node:w1@kubernetes");
  assert.equal(kc.clusters[0]!.cluster.server, "https://10.0.0.1:6443");
  assert.equal(kc.users[0]!.name, "system:node:w1");
  const flattenedCert = Buffer.from(
    kc.users[0]!.user["client-certificate-data"]!,
    "base64",
  ).toString();
  assert.ok(
    flattenedCert.includes(certOf(join(pki, "kubelet-client-current.pem")).trim().split("\n")[1]!),
  );

  // the persisted config names the key file, never the key
  const config = readFileSync(join(root, "etc/node-join/config.yaml"), "utf8");
  assert.match(config, /authKeyFile: \/etc\/node-join\/ca-auth\.key/);
  assert.ok(!config.includes(ca.authKeyHex));
  assert.ok(!r.stdout.includes(ca.authKeyHex) && !r.stderr.includes(ca.authKeyHex));

  // status lists both certificates as managed
  const st = await runCli(["status", "--root", root]);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /^CERTIFICATE {5}EXPIRES {15}RESIDUAL {2}RENEW IN {2}STATE$/m);
  assert.match(
    st.stdout,
    /^kubelet-client {2}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}36\dd {6}\d+d +ok$/m,
  );
  const wide = await runCli(["status", "--root", root, "--wide"]);
  assert.equal(wide.code, 0, wide.stderr);
  assert.match(
    wide.stdout,
    /^kubelet-client {2}\S+Z {2}36\dd {6}\d+d +\S+Z {2}ca {21}yes {17}ECDSA P-256 {2}yes {6}ok/m,
  );
  assert.match(
    wide.stdout,
    /^CERTIFICATE AUTHORITY {2}EXPIRES {15}RESIDUAL {2}EXTERNALLY MANAGED/m,
  );
});

test("a second join changes nothing and says so; --force re-issues", async () => {
  const { root, keyFile } = newRoot();
  assert.equal((await runCli(joinArgs(root, keyFile))).code, 0);
  const before = snapshot(root);
  const again = await runCli(joinArgs(root, keyFile));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /nothing to do/);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
  // without flags: everything comes from the persisted config
  const bare = await runCli(["join", "--root", root]);
  assert.equal(bare.code, 0, bare.stderr);
  assert.match(bare.stdout, /nothing to do/);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
  const forced = await runCli(joinArgs(root, keyFile, ["--force", "--json"]));
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(json<{ issued: unknown[] }>(forced).issued.length, 2);
  const stamped = readdirSync(join(root, "var/lib/kubelet/pki")).filter((n) =>
    /^kubelet-client-\d/.test(n),
  );
  assert.equal(stamped.length, 2, "the previous timestamped file is kept");
});

test("a changed IP makes join re-issue only the serving certificate", async () => {
  const { root, keyFile } = newRoot();
  assert.equal((await runCli(joinArgs(root, keyFile))).code, 0);
  const r = await runCli([...joinArgs(root, keyFile), "--ip", "10.0.0.99", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = json<{ issued: { kind: string; reason: string }[]; kept: string[] }>(r);
  assert.deepEqual(
    out.issued.map((i) => i.kind),
    ["kubelet-server"],
  );
  assert.match(out.issued[0]!.reason, /SANs lack 10\.0\.0\.99/);
  assert.deepEqual(out.kept, ["kubelet-client"]);
});

test("--dry-run prints the requests and writes nothing", async () => {
  const { root, keyFile } = newRoot();
  const before = snapshot(root);
  const r = await runCli(joinArgs(root, keyFile, ["--dry-run"]));
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /would request kubelet-server: CN=system:node:w1 O=system:nodes SANs=w1,w1\.lab,10\.0\.0\.21,2001:db8::21/,
  );
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});

test("a wrong auth key is refused at once with the CA's message (exit 4)", async () => {
  const { root, keyFile } = newRoot();
  writeFileSync(keyFile, "00112233445566778899aabbccddeeff\n", { mode: 0o600 });
  const t0 = Date.now();
  await expectFailure(
    joinArgs(root, keyFile),
    4,
    /CA kubernetes \(cfssl http:\/\/127\.0\.0\.1:\d+\) signing kubelet-client \(profile client\) refused: invalid token/,
    root,
  );
  assert.ok(Date.now() - t0 < 20_000, "a refusal is not retried");
});

test("a CA whose key does not match the pin is refused before anything is sent (exit 5)", async () => {
  const { root, keyFile } = newRoot();
  const wrongPin = "sha256:" + "0".repeat(64);
  const signsBefore = ca.signRequests();
  await expectFailure(
    joinArgs(root, keyFile).map((a) => (a === ca.pin ? wrongPin : a)),
    5,
    /CA certificate pin sha256:[0-9a-f]{64} matches no --ca-cert-hash/,
    root,
  );
  assert.equal(ca.signRequests(), signsBefore, "no CSR reached the CA");
});

test("an unknown profile is refused before its CSR, naming the flag and the profile (exit 2)", async () => {
  // CFSSL describes (and would sign with) its default profile, whose usages lack client auth (the
  // guide's default profile, docs/ca/cfssl/ca-config.json: email protection only).
  const { root, keyFile } = newRoot();
  await expectFailure(
    joinArgs(root, keyFile).map((a) => (a === "client" ? "no-such-profile" : a)),
    2,
    /--client-profile, config cas\.kubernetes\.clientProfile: CA kubernetes \(cfssl http:\/\/127\.0\.0\.1:\d+\) describes profile "no-such-profile" with the usages email protection, without client auth: CFSSL answers for a profile its config does not have with its default profile; check the name/,
    root,
  );
});

test("--serving-profile kubelet-server where the CA has kubelet-serving: exit 2 naming the profile, not an EKU the certificate lacks", async () => {
  const named = await startCfssl({
    profiles: {
      ...DEFAULT_PROFILES,
      // As the CA: a default profile that takes the auth key and signs what it is given.
      default: { usages: ["signing", "key encipherment", "client auth"] },
      "kubelet-client": { usages: ["signing", "key encipherment", "client auth"] },
      "kubelet-serving": { usages: ["signing", "key encipherment", "server auth"] },
    },
  });
  try {
    const root = tempRoot();
    const key = named.installAuthKey(root);
    const args = cfsslWorkerJoin(root, named, {
      "ca-auth-key-file": key,
      "client-profile": "kubelet-client",
      "serving-profile": "kubelet-server",
    });
    const r = await expectFailure(
      args,
      2,
      /--serving-profile, config cas\.kubernetes\.servingProfile: .* describes profile "kubelet-server" with the usages signing, key encipherment, client auth, without server auth/,
      root,
    );
    assert.doesNotMatch(r.stderr, /extended key usage lacks/);
    // The right name joins.
    const ok = await runCli(args.map((a) => (a === "kubelet-server" ? "kubelet-serving" : a)));
    assert.equal(ok.code, 0, ok.stderr);
  } finally {
    await named.stop();
  }
});

test("a CA that is down is retried until --timeout, then exit 3 naming the CA", async () => {
  const { root, keyFile } = newRoot();
  const down = await startCfssl();
  await down.stop();
  const args = joinArgs(root, keyFile, ["--timeout", "3s"]).map((a) =>
    a === ca.url ? down.url : a === ca.pin ? down.pin : a,
  );
  const t0 = Date.now();
  const r = await expectFailure(
    args,
    3,
    new RegExp(
      `CA kubernetes \\(cfssl ${down.url.replace(/\./g, "\\.")}\\) unreachable: connection refused \\(ECONNREFUSED\\)(\\n|$)`,
    ),
    root,
  );
  assert.ok(Date.now() - t0 >= 2_500, "it retried until the timeout");
  assert.match(r.stderr, /attempt 1 failed .*retrying in/);
});

test("without a pin or CA file join refuses; --ca-file works; a group-readable key file is refused", async () => {
  const { root, keyFile } = newRoot();
  const noTrust = joinArgs(root, keyFile).filter(
    (a, i, all) => a !== "--ca-cert-hash" && all[i - 1] !== "--ca-cert-hash",
  );
  await expectFailure(
    noTrust,
    2,
    /no trust anchor: give --ca-cert-hash sha256:<hex> or --ca-file <pem>/,
    root,
  );
  const withFile = await runCli([...noTrust, "--ca-file", ca.caCertFile]);
  assert.equal(withFile.code, 0, withFile.stderr);
  const other = newRoot();
  ca.writeAuthKey(other.keyFile, 0o644);
  await expectFailure(
    joinArgs(other.root, other.keyFile),
    2,
    /CA auth key file .* is readable by group or others \(mode 0644\); fix with: chmod 600/,
    other.root,
  );
});

test("the auth key can come from NODE_JOIN_CA_AUTH_KEY instead of a file", async () => {
  const root = tempRoot();
  const args = joinArgs(root, "unused").filter(
    (a, i, all) => a !== "--ca-auth-key-file" && all[i - 1] !== "--ca-auth-key-file",
  );
  const r = await runCli(args, { env: { NODE_JOIN_CA_AUTH_KEY: ca.authKeyHex } });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!readFileSync(join(root, "etc/node-join/config.yaml"), "utf8").includes(ca.authKeyHex));
});

test("usage errors exit 2 with one line naming the flag", async () => {
  const root = tempRoot();
  await expectFailure(
    ["join", "--root", root, "--api-server", "http://x"],
    2,
    /--api-server: must be a https URL/,
    root,
  );
  await expectFailure(
    [
      "join",
      ...flags({
        root,
        "api-server": "https://x:6443",
        "ca-url": "http://c",
        "ca-cert-hash": "md5:1",
      }),
    ],
    2,
    /--ca-cert-hash: "md5:1" is not sha256/,
    root,
  );
  const r = await runCli(["join", "--bogus"]);
  assert.deepEqual(r, {
    code: 2,
    stdout: "",
    stderr: "node-join: error: unknown option '--bogus'\n",
  });
  // The bundle as the binary runs it: --version is `node-join version`'s line, bare is the help.
  const version = await runCli(["version"]);
  for (const flag of ["--version", "-V"]) assert.deepEqual(await runCli([flag]), version);
  const bare = await runCli([]);
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /^Usage: node-join /);
});

test("an https CA is verified against the pinned CA; a TLS bundle of another CA is refused (exit 5)", async () => {
  const tlsCa = await startCfssl({ tls: true, ca: { cert: ca.caCertFile, key: ca.caKeyFile } });
  try {
    const { root, keyFile } = newRoot();
    tlsCa.writeAuthKey(keyFile);
    const args = joinArgs(root, keyFile).map((a) => (a === ca.url ? tlsCa.url : a));
    const ok = await runCli(args);
    assert.equal(ok.code, 0, ok.stderr);
    const other = await startCfssl({ cn: "someone-else" });
    await other.stop();
    const second = newRoot();
    tlsCa.writeAuthKey(second.keyFile);
    const bad = joinArgs(second.root, second.keyFile, ["--ca-tls-file", other.caCertFile]).map(
      (a) => (a === ca.url ? tlsCa.url : a),
    );
    await expectFailure(
      bad,
      5,
      /TLS certificate of the server does not verify against the pinned CA/,
      second.root,
    );
  } finally {
    await tlsCa.stop();
  }
});
