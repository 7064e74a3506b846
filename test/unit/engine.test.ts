// The engine's decisions for join and renew, in process: a fake CA behind the real backend
// interface, a fake clock, temp roots. What is issued, why, and what lands on disk.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { runJoin, type JoinResult } from "../../agent/cli/join.js";
import { KUBELET_FILES_KEPT, runRenew, type RenewResult } from "../../agent/cli/renew.js";
import {
  CaRefusedError,
  CaUnreachableError,
  LockedError,
  RenewalRefusedError,
  UsageError,
} from "../../agent/common/errors.js";
import { toSettings, type Settings } from "../../agent/config/settings.js";
import { flagValues, mergeValues, type RawValues } from "../../agent/config/sources.js";
import type { Runtime } from "../../agent/engine/runtime.js";
import type { CaName } from "../../agent/pki/cas.js";
import { renewalDeadline } from "../../agent/pki/deadline.js";
import { parseCert, splitPemCertificates } from "../../agent/pki/x509.js";
import { layout } from "../../agent/store/layout.js";
import { acquireLock } from "../../agent/store/lock.js";
import { FakeCa, fakeClock } from "../helpers/fake-ca.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { fakeCaRoot } from "../helpers/joined.js";

const PIN = `sha256:${"ab".repeat(32)}`;
const DAY = 86400_000;
const PKI = "var/lib/kubelet/pki";

interface Node {
  root: string;
  clock: ReturnType<typeof fakeClock>;
  cas: Record<CaName, FakeCa>;
  logs: string[];
  rt: Runtime;
  flags: Record<string, unknown>;
  join(
    extra?: Record<string, unknown>,
    o?: { force?: boolean; dryRun?: boolean },
  ): Promise<JoinResult>;
  renew(o?: {
    force?: boolean;
    dryRun?: boolean;
    before?: string;
    reuseKey?: boolean;
  }): Promise<RenewResult>;
}

async function node(
  role: "worker" | "control-plane" = "worker",
  lifetimeMs = 365 * DAY,
): Promise<Node> {
  const { root, clock, cas } = await fakeCaRoot("nj-engine-", lifetimeMs);
  const logs: string[] = [];
  const rt: Runtime = {
    layout: layout(root),
    env: {},
    clock,
    log: (l) => logs.push(l),
    backend: (ctx) => cas[ctx.ca.name],
  };
  const flags: Record<string, unknown> = {
    role,
    apiServer: "https://10.0.0.1:6443",
    caUrl: "http://ca.invalid:8888",
    caCertHash: [PIN],
    nodeName: role === "worker" ? "w1" : "cp1",
    ip: ["10.0.0.21"],
  };
  if (role === "control-plane") {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    mkdirSync(join(root, "etc/node-join"), { recursive: true });
    writeFileSync(
      join(root, "etc/node-join/sa.key"),
      privateKey.export({ format: "pem", type: "pkcs1" }),
      { mode: 0o600 },
    );
    writeFileSync(
      join(root, "etc/node-join/sa.pub"),
      publicKey.export({ format: "pem", type: "spki" }),
    );
    Object.assign(flags, {
      etcdCaCertHash: [PIN],
      frontProxyCaCertHash: [PIN],
      saKeyFile: join(root, "etc/node-join/sa.key"),
      saPubFile: join(root, "etc/node-join/sa.pub"),
    });
  }
  const settingsOf = (values: RawValues): Settings => {
    values.set("timer.enabled", false);
    return toSettings(values, root);
  };
  const n: Node = {
    root,
    clock,
    cas,
    logs,
    rt,
    flags,
    join: (extra = {}, o = {}) => {
      const values = mergeValues(flagValues({ ...flags, ...extra }));
      return runJoin(
        {
          settings: settingsOf(values),
          values,
          force: Boolean(o.force),
          dryRun: Boolean(o.dryRun),
        },
        rt,
      );
    },
    renew: (o = {}) => {
      const values = mergeValues(
        flagValues({ ...flags, ...(o.before ? { before: o.before } : {}) }),
      );
      const s = settingsOf(values);
      if (o.reuseKey) s.renew.reuseKey = true;
      return runRenew(
        { settings: s, force: Boolean(o.force), dryRun: Boolean(o.dryRun), configured: true },
        rt,
      );
    },
  };
  return n;
}

const leafOf = (root: string, prefix: string) => {
  const text = readFileSync(join(root, PKI, `${prefix}-current.pem`), "utf8");
  return parseCert(splitPemCertificates(text)[0]!);
};

test("join: a fresh worker gets both kubelet certificates from the CA, with kubeadm's layout and modes", async () => {
  const n = await node();
  const r = await n.join();
  assert.deepEqual(
    r.issued.map((i) => [i.kind, i.reason]),
    [
      ["kubelet-client", "missing"],
      ["kubelet-server", "missing"],
    ],
  );
  assert.deepEqual([...n.cas.kubernetes.signed].sort(), ["kubelet-client", "kubelet-server"]);
  assert.match(
    r.message,
    /^joined worker node w1: issued 2 certificate\(s\), wrote \d+ file\(s\)$/,
  );
  const link = readlinkSync(join(n.root, PKI, "kubelet-client-current.pem"));
  assert.match(
    link,
    /^kubelet-client-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\.pem$/,
    "a bare name, as the kubelet's FileStore writes it",
  );
  assert.equal(statSync(join(n.root, PKI, link)).mode & 0o777, 0o600);
  assert.equal(statSync(join(n.root, "etc/kubernetes/pki/ca.crt")).mode & 0o777, 0o644);
  assert.equal(statSync(join(n.root, "etc/kubernetes/kubelet.conf")).mode & 0o777, 0o600);
  assert.match(
    readFileSync(join(n.root, "etc/kubernetes/kubelet.conf"), "utf8"),
    /client-certificate: \.\.\/\.\.\/var\/lib\/kubelet\/pki\/kubelet-client-current\.pem/,
  );
  assert.deepEqual(leafOf(n.root, "kubelet-server").ips, ["10.0.0.21"]);
  assert.ok(existsSync(join(n.root, "etc/node-join/config.yaml")));
  assert.ok(!existsSync(join(n.root, "var/lib/node-join/lock")), "the lock is released");
});

test("join: a second join issues nothing and writes nothing; --force re-issues everything", async () => {
  const n = await node();
  await n.join();
  const snap = snapshot(n.root);
  const again = await n.join();
  assert.deepEqual(again.issued, []);
  assert.deepEqual(again.kept, ["kubelet-client", "kubelet-server"]);
  assert.deepEqual(again.changedFiles, []);
  assert.match(again.message, /^nothing to do: worker node w1 already has valid certificates/);
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), []);
  const forced = await n.join({}, { force: true });
  assert.deepEqual(
    forced.issued.map((i) => i.reason),
    ["forced", "forced"],
  );
});

test("join: a changed IP re-issues only the serving certificate, and says why", async () => {
  const n = await node();
  await n.join();
  const client = leafOf(n.root, "kubelet-client").serial;
  const r = await n.join({ ip: ["10.0.0.99"] });
  assert.deepEqual(
    r.issued.map((i) => i.kind),
    ["kubelet-server"],
  );
  assert.match(r.issued[0]!.reason, /SANs lack 10\.0\.0\.99/);
  assert.equal(leafOf(n.root, "kubelet-client").serial, client);
  assert.deepEqual(leafOf(n.root, "kubelet-server").ips, ["10.0.0.99"]);
});

test("join: a key that does not match, a certificate of another CA, an expired one are each re-issued", async () => {
  const n = await node();
  await n.join();
  // Another CA's certificate with the right name: the chain check against the CA it now serves.
  const other = await FakeCa.create("other", n.clock);
  n.cas.kubernetes = other;
  const moved = await n.join();
  assert.deepEqual(
    moved.issued.map((i) => i.reason),
    ["does not chain to the installed CA", "does not chain to the installed CA"],
  );
  // A key from elsewhere in the client's pair.
  const file = join(n.root, PKI, readlinkSync(join(n.root, PKI, "kubelet-client-current.pem")));
  const pem = readFileSync(file, "utf8");
  const foreign = generateKeyPairSync("ec", { namedCurve: "prime256v1" })
    .privateKey.export({ format: "pem", type: "sec1" })
    .toString();
  writeFileSync(file, pem.replace(/-----BEGIN EC PRIVATE KEY-----[\s\S]*$/, foreign));
  const key = await n.join();
  assert.deepEqual(
    key.issued.map((i) => [i.kind, i.reason]),
    [["kubelet-client", "installed key does not match its certificate"]],
  );
  // Past NotAfter: join has no deadline rule, but an expired certificate is always re-issued.
  n.clock.advance(366 * DAY);
  const expired = await n.join();
  assert.equal(expired.issued.length, 2);
  assert.ok(
    expired.issued.every((i) => /^expired at /.test(i.reason)),
    JSON.stringify(expired.issued),
  );
});

test("join --dry-run: fetches and checks the CA, sends no CSR, writes nothing, lists every file it would create", async () => {
  const n = await node();
  const snap = snapshot(n.root);
  const r = await n.join({}, { dryRun: true });
  assert.equal(r.dryRun, true);
  assert.deepEqual(
    r.issued.map((i) => i.kind),
    ["kubelet-client", "kubelet-server"],
  );
  assert.equal(n.cas.kubernetes.fetches, 1, "the CA is reached and its certificate checked");
  assert.deepEqual(n.cas.kubernetes.signed, [], "no CSR sent");
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), []);
  const rel = (p: string) => p.slice(n.root.length);
  const stamp = /-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d\.pem$/;
  assert.deepEqual(
    r.files.map((f) => [f.action, f.mode, rel(f.path).replace(stamp, "-<stamp>.pem")]),
    [
      ["create", "0644", "/etc/kubernetes/pki/ca.crt"],
      ["create", "0600", "/var/lib/kubelet/pki/kubelet-client-<stamp>.pem"],
      ["create", "0777", "/var/lib/kubelet/pki/kubelet-client-current.pem"],
      ["create", "0600", "/etc/kubernetes/kubelet.conf"],
      ["create", "0600", "/var/lib/kubelet/pki/kubelet-server-<stamp>.pem"],
      ["create", "0777", "/var/lib/kubelet/pki/kubelet-server-current.pem"],
      ["create", "0644", "/etc/kubernetes/kubelet.conf.d/50-node-join-serving.conf"],
      ["create", "0644", "/etc/node-join/config.yaml"],
      ["create", "0600", "/var/lib/node-join/state.json"],
    ],
  );
  assert.deepEqual(
    r.changedFiles,
    r.files.map((f) => f.path),
  );
  assert.equal(
    r.message,
    "dry run: would request 2 certificate(s) and write 9 file(s) of worker node w1",
  );
  // What the real join then writes is exactly that list.
  const real = await n.join();
  assert.deepEqual(
    real.files.map((f) => [f.action, f.mode, rel(f.path).replace(stamp, "")]),
    r.files.map((f) => [f.action, f.mode, rel(f.path).replace(stamp, "")]),
  );
});

test("join --dry-run on a control plane: all three CAs checked, every kubeadm file listed with its mode", async () => {
  const n = await node("control-plane");
  const snap = snapshot(n.root);
  const r = await n.join({}, { dryRun: true });
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), []);
  for (const ca of ["kubernetes", "frontProxy", "etcd"] as const) {
    assert.equal(n.cas[ca].fetches, 1, ca);
    assert.deepEqual(n.cas[ca].signed, [], ca);
  }
  const byPath = new Map(r.files.map((f) => [f.path.slice(n.root.length), f]));
  for (const [path, mode] of [
    ["/etc/kubernetes/pki/etcd/ca.crt", "0644"],
    ["/etc/kubernetes/pki/apiserver-etcd-client.key", "0600"],
    ["/etc/kubernetes/pki/apiserver.crt", "0644"],
    ["/etc/kubernetes/pki/sa.key", "0600"],
    ["/etc/kubernetes/pki/sa.pub", "0644"],
    ["/etc/kubernetes/admin.conf", "0600"],
  ] as const)
    assert.deepEqual(byPath.get(path), { path: n.root + path, action: "create", mode }, path);
  const real = await n.join();
  assert.equal(real.files.length, r.files.length, "the join writes what the dry run listed");
});

test("join --dry-run on a joined node: a changed IP replaces the serving files, creates a new stamped file", async () => {
  const n = await node();
  await n.join();
  const snap = snapshot(n.root);
  const r = await n.join({ ip: ["10.0.0.99"] }, { dryRun: true });
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), []);
  assert.deepEqual(
    r.issued.map((i) => i.kind),
    ["kubelet-server"],
  );
  const rel = (p: string) => p.slice(n.root.length);
  assert.deepEqual(
    r.files.map((f) => [f.action, f.mode, rel(f.path).replace(/-\d[\d-]+\.pem$/, "-<stamp>.pem")]),
    [
      ["create", "0600", "/var/lib/kubelet/pki/kubelet-server-<stamp>.pem"],
      ["replace", "0777", "/var/lib/kubelet/pki/kubelet-server-current.pem"],
      ["replace", "0644", "/etc/node-join/config.yaml"],
      ["replace", "0600", "/var/lib/node-join/state.json"],
    ],
  );
  const unchanged = await n.join({}, { dryRun: true });
  assert.deepEqual(unchanged.files, []);
  assert.equal(
    unchanged.message,
    "dry run: nothing to do: worker node w1 already has valid certificates matching its config",
  );
});

test("join --dry-run: a CA that is down, or refuses, fails the dry run as it would fail the join", async () => {
  const n = await node();
  n.cas.kubernetes.failure = { mode: "down" };
  await assert.rejects(
    n.join({}, { dryRun: true }),
    (e: unknown) => e instanceof CaUnreachableError && e.exitCode === 3,
  );
});

test("secret files are read and checked before any CA is contacted: missing, exposed, not hex (exit 2)", async () => {
  const n = await node();
  const keyFile = join(n.root, "etc/node-join/ca-auth.key");
  const flag = "--ca-auth-key-file, config cas.kubernetes.authKeyFile";
  const cases: [string, () => void, string][] = [
    [
      "missing",
      () => rmSync(keyFile, { force: true }),
      `CA kubernetes: CA auth key file ${keyFile} does not exist (${flag})`,
    ],
    [
      "0644",
      () => writeFileSync(keyFile, "00ff\n", { mode: 0o644 }),
      `CA auth key file ${keyFile} is readable by group or others (mode 0644); fix with: chmod 600 ${keyFile}`,
    ],
    [
      "not hex",
      () => writeFileSync(keyFile, "not-a-key\n", { mode: 0o600 }),
      `CA kubernetes: CA auth key file ${keyFile} (${flag}) is not hex (CFSSL auth keys are hex strings, as in the CA's config)`,
    ],
    [
      "empty",
      () => writeFileSync(keyFile, "\n", { mode: 0o600 }),
      `CA kubernetes: CA auth key file ${keyFile} (${flag}) is empty`,
    ],
  ];
  mkdirSync(join(n.root, "etc/node-join"), { recursive: true });
  for (const [what, make, message] of cases) {
    rmSync(keyFile, { force: true });
    make();
    for (const dryRun of [false, true]) {
      await assert.rejects(
        n.join({ caAuthKeyFile: keyFile }, { dryRun }),
        (e: unknown) => e instanceof UsageError && e.exitCode === 2 && e.message === message,
        `${what}${dryRun ? " (dry run)" : ""}`,
      );
    }
    assert.equal(n.cas.kubernetes.fetches, 0, `${what}: no CA contacted`);
    assert.deepEqual(n.logs, [], `${what}: nothing logged, no "requesting" line`);
  }
  // The value never appears in a message, only the file.
  writeFileSync(keyFile, "s3cr3t-not-hex\n", { mode: 0o600 });
  await assert.rejects(n.join({ caAuthKeyFile: keyFile }), (e: unknown) => {
    assert.doesNotMatch((e as Error).message, /s3cr3t/);
    return true;
  });
  // A good key is read and the join goes on.
  writeFileSync(keyFile, "0123456789abcdef\n", { mode: 0o600 });
  const ok = await n.join({ caAuthKeyFile: keyFile });
  assert.equal(ok.issued.length, 2);
});

test("a missing --ca-file, an unusable step-ca token file or a missing password file stop the join before any CA is contacted", async () => {
  const n = await node();
  const dir = join(n.root, "etc/node-join");
  mkdirSync(dir, { recursive: true });
  const caFile = join(dir, "ca.pem");
  await assert.rejects(
    n.join({ caFile }),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        `CA kubernetes: CA file ${caFile} does not exist (--ca-file, config cas.kubernetes.caFile)`,
  );
  const stepCa = {
    caType: "step-ca",
    caUrl: "https://ca.invalid:9000",
    caFingerprint: "ab".repeat(32),
  };
  const tokenFile = join(dir, "tokens");
  writeFileSync(tokenFile, "not-a-token\n", { mode: 0o600 });
  await assert.rejects(n.join({ ...stepCa, caTokenFile: tokenFile }), (e: unknown) => {
    assert.ok(e instanceof UsageError, String(e));
    assert.match(
      e.message,
      new RegExp(
        `^CA kubernetes: step-ca token file ${tokenFile} \\(--ca-token-file, config cas\\.kubernetes\\.tokenFile\\) is unusable: token 1 in ${tokenFile} is not a step-ca one-time token`,
      ),
    );
    return true;
  });
  const passwordFile = join(dir, "password");
  await assert.rejects(
    n.join({ ...stepCa, caProvisioner: "nodes", caPasswordFile: passwordFile }),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        `CA kubernetes: step-ca provisioner password file ${passwordFile} does not exist (--ca-password-file, config cas.kubernetes.passwordFile)`,
  );
  assert.equal(n.cas.kubernetes.fetches, 0, "no CA contacted");
  assert.deepEqual(n.logs, []);
});

test("renew against step-ca does not miss a password file removed after the join", async () => {
  const n = await node();
  n.cas.kubernetes.withRenewalPath();
  const dir = join(n.root, "etc/node-join");
  mkdirSync(dir, { recursive: true });
  const passwordFile = join(dir, "password");
  writeFileSync(passwordFile, "pw\n", { mode: 0o600 });
  Object.assign(n.flags, {
    caType: "step-ca",
    caUrl: "https://ca.invalid:9000",
    caFingerprint: "ab".repeat(32),
    caProvisioner: "nodes",
    caPasswordFile: passwordFile,
  });
  await n.join();
  rmSync(passwordFile);
  const r = await n.renew({ force: true });
  assert.deepEqual(
    r.renewed.map((x) => x.kind),
    ["kubelet-client", "kubelet-server"],
  );
  assert.deepEqual([...n.cas.kubernetes.renewed].sort(), ["kubelet-client", "kubelet-server"]);
});

test("renew reads the auth key before contacting the CA of what is due; nothing due reads no secret", async () => {
  const n = await node();
  await n.join();
  const keyFile = join(n.root, "etc/node-join/missing.key");
  n.flags.caAuthKeyFile = keyFile;
  const r = await n.renew();
  assert.deepEqual(r.renewed, [], "nothing due: only the CA bundle refreshed, no secret needed");
  const fetches = n.cas.kubernetes.fetches;
  await assert.rejects(
    n.renew({ force: true }),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        `CA kubernetes: CA auth key file ${keyFile} does not exist (--ca-auth-key-file, config cas.kubernetes.authKeyFile)`,
  );
  assert.equal(n.cas.kubernetes.fetches, fetches, "no CA contacted");
});

test("renew --dry-run: checks the CA of what is due and lists the files it would write", async () => {
  const n = await node();
  await n.join();
  const snap = snapshot(n.root);
  const fetches = n.cas.kubernetes.fetches;
  const r = await n.renew({ force: true, dryRun: true });
  assert.equal(n.cas.kubernetes.fetches, fetches + 1);
  assert.equal(n.cas.kubernetes.signed.length, 2, "only the join's CSRs");
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), []);
  const rel = (p: string) => p.slice(n.root.length).replace(/-\d[\d-]+\.pem$/, "-<stamp>.pem");
  assert.deepEqual(
    r.files.map((f) => [f.action, f.mode, rel(f.path)]),
    [
      ["create", "0600", "/var/lib/kubelet/pki/kubelet-client-<stamp>.pem"],
      ["replace", "0777", "/var/lib/kubelet/pki/kubelet-client-current.pem"],
      ["create", "0600", "/var/lib/kubelet/pki/kubelet-server-<stamp>.pem"],
      ["replace", "0777", "/var/lib/kubelet/pki/kubelet-server-current.pem"],
      ["replace", "0600", "/var/lib/node-join/state.json"],
    ],
  );
});

test("a changed --key-algorithm re-issues every certificate with a key of the new algorithm, and says why", async () => {
  const n = await node();
  await n.join();
  const keyOf = (prefix: string) =>
    createPrivateKey(readFileSync(join(n.root, PKI, `${prefix}-current.pem`), "utf8"));
  assert.equal(keyOf("kubelet-client").asymmetricKeyType, "ec");
  const r = await n.join({ keyAlgorithm: "rsa-2048" });
  assert.deepEqual(
    r.issued.map((i) => [i.kind, i.reason]),
    [
      ["kubelet-client", "key algorithm changed (ecdsa-p256 -> rsa-2048)"],
      ["kubelet-server", "key algorithm changed (ecdsa-p256 -> rsa-2048)"],
    ],
  );
  for (const p of ["kubelet-client", "kubelet-server"]) {
    assert.equal(keyOf(p).asymmetricKeyType, "rsa");
    assert.equal(keyOf(p).asymmetricKeyDetails?.modulusLength, 2048);
  }
  // The key size alone counts too; the same settings again change nothing.
  const bigger = await n.join({ keyAlgorithm: "rsa-3072" });
  assert.deepEqual(
    bigger.issued.map((i) => i.reason),
    [
      "key algorithm changed (rsa-2048 -> rsa-3072)",
      "key algorithm changed (rsa-2048 -> rsa-3072)",
    ],
  );
  const again = await n.join({ keyAlgorithm: "rsa-3072" });
  assert.deepEqual(again.issued, []);
});

test("renew with renew.reuseKey still replaces a key of another algorithm than the configured one", async () => {
  const n = await node();
  await n.join();
  n.flags.keyAlgorithm = "ecdsa-p384";
  const r = await n.renew({ reuseKey: true });
  assert.deepEqual(
    r.renewed.map((x) => x.reason),
    [
      "key algorithm changed (ecdsa-p256 -> ecdsa-p384)",
      "key algorithm changed (ecdsa-p256 -> ecdsa-p384)",
    ],
  );
  const key = createPrivateKey(
    readFileSync(join(n.root, PKI, "kubelet-client-current.pem"), "utf8"),
  );
  assert.equal(key.asymmetricKeyDetails?.namedCurve, "secp384r1");
});

test("join: a CA refusing one certificate of the set leaves the node exactly as it was", async () => {
  const n = await node("control-plane");
  await n.join();
  const snap = snapshot(n.root);
  n.cas.etcd.failure = { mode: "refuse", kinds: ["etcd-peer"] };
  await assert.rejects(
    n.join({}, { force: true }),
    (e: unknown) => e instanceof CaRefusedError && e.exitCode === 4,
  );
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), []);
});

test("join: a control plane gets every kubeadm certificate from its three CAs and no CA key", async () => {
  const n = await node("control-plane");
  const r = await n.join();
  assert.equal(r.issued.length, 13);
  assert.deepEqual(n.cas.frontProxy.signed, ["front-proxy-client"]);
  assert.deepEqual([...n.cas.etcd.signed].sort(), [
    "apiserver-etcd-client",
    "etcd-healthcheck-client",
    "etcd-peer",
    "etcd-server",
  ]);
  for (const f of [
    "ca.crt",
    "front-proxy-ca.crt",
    "etcd/ca.crt",
    "apiserver.crt",
    "apiserver.key",
    "etcd/peer.key",
    "sa.key",
    "sa.pub",
  ]) {
    assert.ok(existsSync(join(n.root, "etc/kubernetes/pki", f)), f);
  }
  for (const f of ["ca.key", "front-proxy-ca.key", "etcd/ca.key"])
    assert.ok(!existsSync(join(n.root, "etc/kubernetes/pki", f)), f);
  const etcdCa = readFileSync(join(n.root, "etc/kubernetes/pki/etcd/ca.crt"), "utf8");
  assert.equal(etcdCa, n.cas.etcd.ca.pem);
  // The local kubeconfigs point at this control plane's own API server.
  assert.match(
    readFileSync(join(n.root, "etc/kubernetes/scheduler.conf"), "utf8"),
    /server: https:\/\/10\.0\.0\.21:6443/,
  );
  assert.match(
    readFileSync(join(n.root, "etc/kubernetes/admin.conf"), "utf8"),
    /server: https:\/\/10\.0\.0\.1:6443/,
  );
  const again = await n.join();
  assert.deepEqual(again.issued, []);
  const renew = await n.renew();
  assert.deepEqual(renew.renewed, []);
});

test("renew: nothing due refreshes the CA bundle only (no CSR, no file) and names the next deadline from the kubelet's rule", async () => {
  const n = await node();
  await n.join();
  const r = await n.renew();
  assert.deepEqual(r.renewed, []);
  assert.equal(n.cas.kubernetes.fetches, 2, "join, then renew's bundle refresh");
  assert.equal(n.cas.kubernetes.signed.length, 2, "only the join's CSRs");
  assert.deepEqual(r.changedFiles, [], "an unchanged bundle is not written");
  const leaves = ["kubelet-client", "kubelet-server"].map((p) => leafOf(n.root, p));
  const expected = Math.min(...leaves.map((l) => renewalDeadline(l, { nodeName: "w1" }).getTime()));
  const first = leaves.findIndex(
    (l) => renewalDeadline(l, { nodeName: "w1" }).getTime() === expected,
  );
  const kind = ["kubelet-client", "kubelet-server"][first]!;
  const at = new Date(expected).toISOString().replace(/\.\d{3}Z$/, "Z");
  assert.equal(r.message, `nothing to renew; next renewal: ${kind} at ${at}`);
  assert.equal(r.nextDeadline, at);
  assert.equal(r.nextDeadlineKind, kind);
  const lifetime = leaves[0]!.notAfter.getTime() - leaves[0]!.notBefore.getTime();
  const fraction = (expected - leaves[0]!.notBefore.getTime()) / lifetime;
  assert.ok(fraction >= 0.7 && fraction < 0.9, String(fraction));
});

test("renew: past the deadline both are renewed with fresh keys; the renewal is recorded; old files are pruned", async () => {
  const n = await node("worker", 30 * DAY);
  await n.join();
  const keyOf = (prefix: string) =>
    readFileSync(join(n.root, PKI, `${prefix}-current.pem`), "utf8")
      .split("-----END CERTIFICATE-----")
      .pop();
  const oldKey = keyOf("kubelet-client");
  n.clock.advance(27.5 * DAY); // past 90% of 30 days, before NotAfter
  const r = await n.renew();
  assert.deepEqual(
    r.renewed.map((x) => [x.kind, x.expired]),
    [
      ["kubelet-client", false],
      ["kubelet-server", false],
    ],
  );
  assert.ok(
    r.renewed.every((x) => /^past its renewal deadline/.test(x.reason)),
    JSON.stringify(r.renewed),
  );
  assert.notEqual(keyOf("kubelet-client"), oldKey, "a fresh key by default");
  const state = JSON.parse(readFileSync(join(n.root, "var/lib/node-join/state.json"), "utf8")) as {
    lastRenewal: string;
  };
  assert.equal(state.lastRenewal, new Date(n.clock.now()).toISOString());
  for (let i = 0; i < 5; i++) {
    n.clock.advance(28 * DAY);
    assert.equal((await n.renew()).renewed.length, 2);
  }
  const stamped = readdirSync(join(n.root, PKI)).filter((f) => /^kubelet-client-\d{4}/.test(f));
  assert.equal(stamped.length, KUBELET_FILES_KEPT + 1, stamped.join(" "));
});

test("renew: an expired certificate is renewed and flagged; reuseKey keeps the key", async () => {
  const n = await node("worker", 10 * DAY);
  await n.join();
  const key = () =>
    readFileSync(join(n.root, PKI, "kubelet-server-current.pem"), "utf8")
      .split("-----END CERTIFICATE-----")
      .pop();
  const before = key();
  n.clock.advance(11 * DAY);
  const r = await n.renew({ reuseKey: true });
  assert.ok(
    r.renewed.length === 2 && r.renewed.every((x) => x.expired && /^expired at /.test(x.reason)),
  );
  assert.match(
    r.message,
    /^renewed 2: kubelet-client, kubelet-server \(kubelet-client, kubelet-server had expired\)$/,
  );
  assert.equal(key(), before);
});

test("renew: --before, --force, --dry-run and a repair each decide as documented", async () => {
  const n = await node("worker", 30 * DAY);
  await n.join();
  assert.deepEqual(
    (await n.renew({ before: "31d" })).renewed.map((x) => x.reason),
    Array(2).fill("renew.before (31d) is at least its whole lifetime (30d): due on every run"),
  );
  const snap = snapshot(n.root);
  const dry = await n.renew({ force: true, dryRun: true });
  assert.deepEqual(
    dry.renewed.map((x) => x.reason),
    ["forced", "forced"],
  );
  assert.match(dry.message, /^dry run: would renew kubelet-client, kubelet-server$/);
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), [], "a dry run writes nothing");
  rmSync(join(n.root, PKI, "kubelet-server-current.pem"));
  const repaired = await n.renew();
  assert.deepEqual(
    repaired.renewed.map((x) => [x.kind, x.reason]),
    [["kubelet-server", "missing"]],
  );
  assert.ok(lstatSync(join(n.root, PKI, "kubelet-server-current.pem")).isSymbolicLink());
});

test("renew: with a renewal path the CA renews with the installed credentials instead of enrolling", async () => {
  const n = await node("worker", 30 * DAY);
  await n.join();
  n.cas.kubernetes.withRenewalPath();
  n.clock.advance(28 * DAY);
  await n.renew();
  assert.deepEqual([...n.cas.kubernetes.renewed].sort(), ["kubelet-client", "kubelet-server"]);
  assert.deepEqual(
    [...n.cas.kubernetes.signed].sort(),
    ["kubelet-client", "kubelet-server"],
    "only join enrolled",
  );
});

test("renew: the engine decides renewal or enrolment: a certificate whose names changed is enrolled again, not renewed", async () => {
  const n = await node("worker", 30 * DAY);
  await n.join();
  n.cas.kubernetes.withRenewalPath();
  n.flags.ip = ["10.0.0.99"];
  const r = await n.renew();
  assert.deepEqual(
    r.renewed.map((x) => x.kind),
    ["kubelet-server"],
  );
  assert.deepEqual(n.cas.kubernetes.renewed, [], "a renewal keeps the old SANs");
  // join signs its certificates concurrently, so only the renew's CSR has a fixed place
  assert.deepEqual(n.cas.kubernetes.signed.slice(0, 2).sort(), [
    "kubelet-client",
    "kubelet-server",
  ]);
  assert.deepEqual(n.cas.kubernetes.signed.slice(2), ["kubelet-server"], "renew enrolled again");
  assert.match(
    n.logs.join("\n"),
    /CA kubernetes \(fake\): kubelet-server must change \(.*10\.0\.0\.99.*\) and renewal keeps the old subject and SANs: enrolling kubelet-server again/,
  );
});

test("renew: a renewal the CA refuses in a way enrolment mends (RenewalRefusedError) is enrolled again where the backend can, else the backend's refusal stops the run", async () => {
  const n = await node("worker", 30 * DAY);
  await n.join();
  const fake = n.cas.kubernetes;
  const asked: boolean[] = [];
  fake.renew = async (req) => {
    asked.push(req.expired);
    throw new RenewalRefusedError(fake.description, `${req.kind} expired and the CA said no`);
  };
  fake.cannotEnrol = (_req, why) => new CaRefusedError(`${fake.description}: ${why}: no secret`);
  n.clock.advance(31 * DAY);
  const snap = snapshot(n.root);
  await assert.rejects(n.renew(), (e: unknown) => {
    assert.ok(e instanceof CaRefusedError);
    assert.match(
      (e as Error).message,
      /^CA kubernetes \(fake\): kubelet-(client|server) expired and the CA said no: no secret$/,
    );
    return true;
  });
  assert.deepEqual(asked, [true, true], "the assessment told the backend the certificate expired");
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), []);
  delete fake.cannotEnrol;
  const r = await n.renew();
  assert.equal(r.renewed.length, 2);
  assert.deepEqual(fake.signed.slice(2).sort(), ["kubelet-client", "kubelet-server"]);
  assert.match(
    n.logs.join("\n"),
    /kubelet-server expired and the CA said no: enrolling kubelet-server again/,
  );
});

test("renew: a CA that is down fails with exit 3 and changes nothing; a held lock is exit 7", async () => {
  const n = await node("worker", 30 * DAY);
  await n.join();
  n.clock.advance(28 * DAY);
  const snap = snapshot(n.root);
  n.cas.kubernetes.failure = { mode: "down" };
  await assert.rejects(
    n.renew(),
    (e: unknown) => e instanceof CaUnreachableError && e.exitCode === 3,
  );
  assert.deepEqual(diffSnapshots(snap, snapshot(n.root)), []);
  delete n.cas.kubernetes.failure;
  const lock = acquireLock(n.rt.layout.lockFile);
  try {
    await assert.rejects(n.renew(), (e: unknown) => e instanceof LockedError && e.exitCode === 7);
  } finally {
    lock.release();
  }
  assert.equal((await n.renew()).renewed.length, 2);
});

class CrashStop extends Error {}

for (const step of ["stage", "journal", "move:0", "move:1", "move:2", "done"]) {
  test(`a renew stopped at install step "${step}" leaves, after recovery, the whole old set or the whole new one`, async () => {
    const n = await node("worker", 30 * DAY);
    await n.join();
    const before = ["kubelet-client", "kubelet-server"].map((p) => leafOf(n.root, p).serial);
    const copy = tempRoot("nj-engine-crash-");
    // What a SIGKILL at this step leaves on disk: the tree as it is at that moment. The journal
    // names absolute paths, so the tree is put back in its place before the restart.
    n.rt.crashPoint = (at) => {
      if (at !== step) return;
      rmSync(copy, { recursive: true, force: true });
      cpSync(n.root, copy, { recursive: true, verbatimSymlinks: true });
      throw new CrashStop(at);
    };
    await assert.rejects(n.renew({ force: true }), CrashStop);
    rmSync(n.root, { recursive: true, force: true });
    cpSync(copy, n.root, { recursive: true, verbatimSymlinks: true });
    // The killed run's lock names a pid that is gone; pid_max is never a live pid.
    const lockFile = join(n.root, "var/lib/node-join/lock");
    assert.ok(existsSync(lockFile), "the killed run held the lock");
    writeFileSync(lockFile, `${readFileSync("/proc/sys/kernel/pid_max", "utf8").trim()}\n`);
    n.rt.crashPoint = () => undefined;
    n.logs.length = 0;
    const r = await n.renew();
    assert.deepEqual(r.renewed, [], "the next run finds a complete set");
    const now = ["kubelet-client", "kubelet-server"].map((p) => leafOf(n.root, p).serial);
    const fresh = now.map((s, i) => s !== before[i]);
    assert.equal(fresh[0], fresh[1], `mixed set after a stop at ${step}`);
    assert.equal(
      fresh[0],
      step !== "stage",
      `a stop at ${step} must leave the ${step === "stage" ? "old" : "new"} set`,
    );
    const leftovers: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.name.includes(".node-join-")) leftovers.push(join(d, e.name));
        if (e.isDirectory()) walk(join(d, e.name));
      }
    };
    walk(n.root);
    assert.deepEqual(leftovers, []);
    assert.ok(!existsSync(join(n.root, "var/lib/node-join/journal.json")));
    if (step !== "done") assert.match(n.logs.join("\n"), /recovered an interrupted run/);
  });
}
