// `leave --revoke` end to end, through the bundle, against the real CAs: a control plane's
// certificates from three CFSSL servers with certificate databases are all marked revoked there
// (reason 5, cessationOfOperation) before the files go; a CFSSL without a database stops the leave
// with exit 10 naming every serial and nothing changed, `--force` leaves anyway; step-ca revokes
// over mTLS (a worker, and a control plane on one step-ca), and a copy of the node taken before
// the leave can no longer renew with them. After a renewal the superseded certificates are revoked
// too (reason superseded): a copy taken before `renew --force` cannot renew after the leave either.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { cfsslControlPlaneJoin, cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { installControlPlaneSecrets, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { runCli } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import {
  startStepCa,
  stepControlPlaneJoin,
  stepCaLog,
  stepWorkerJoin,
  type StepCaHandle,
} from "../helpers/stepca.js";
import { saKeyDir } from "../helpers/sa-keys.js";

let k8s: CfsslCa, fp: CfsslCa, etcdCa: CfsslCa, noDb: CfsslCa;
let step: StepCaHandle;
let saDir: string;

before(async () => {
  [k8s, fp, etcdCa, noDb, step] = await Promise.all([
    startCfssl({ cn: "kubernetes", db: true }),
    startCfssl({ cn: "front-proxy-ca", db: true }),
    startCfssl({ cn: "etcd-ca", db: true }),
    startCfssl({ cn: "kubernetes" }),
    startStepCa(), // "workers" (O fixed to system:nodes) and "control-plane" (O from the CSR)
  ]);
  saDir = saKeyDir("nj-leave-revoke-sa-");
});
after(async () => {
  await Promise.all([k8s, fp, etcdCa, noDb, step].map((c) => c?.stop()));
});

/** Every certificate node-join issued under the root (its state file), by decimal serial. */
function installedSerials(root: string): Map<string, string> {
  const state = JSON.parse(readFileSync(join(root, "var/lib/node-join/state.json"), "utf8")) as {
    certificates: Record<string, { serial: string }>;
  };
  return new Map(
    Object.entries(state.certificates).map(([kind, c]) => [
      BigInt(`0x${c.serial}`).toString(),
      kind,
    ]),
  );
}

/** A worker joined to `ca` (its auth key installed) under a new root, and its serials. */
async function cfsslWorker(ca: CfsslCa, prefix: string): Promise<[string, Map<string, string>]> {
  const root = tempRoot(prefix);
  const key = ca.installAuthKey(root);
  const j = await runCli(cfsslWorkerJoin(root, ca, { "ca-auth-key-file": key }));
  assert.equal(j.code, 0, j.stderr);
  return [root, installedSerials(root)];
}

/** A worker joined to the step-ca's "workers" provisioner under a new root, and its serials. */
async function stepWorker(
  prefix: string,
  nodeName: string,
): Promise<[string, Map<string, string>]> {
  const root = tempRoot(prefix);
  const password = step.provisioners[0]!.passwordFile;
  const args = { "ca-provisioner": "workers", "ca-password-file": password, "node-name": nodeName };
  const j = await runCli(stepWorkerJoin(root, step, args));
  assert.equal(j.code, 0, j.stderr);
  return [root, installedSerials(root)];
}

/** A copy of the node's files as `cp -a` takes it, its config naming paths under its own root. */
function copyOf(root: string, prefix: string): string {
  const copy = tempRoot(prefix);
  execFileSync("cp", ["-a", `${root}/.`, copy]);
  const cfg = join(copy, "etc/node-join/config.yaml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replaceAll(root, copy));
  return copy;
}

interface LeaveJson {
  revocations: { kind: string; ca: string; serialDecimal: string; revoked: boolean }[];
}

test("control plane, three CFSSL CAs with databases: every certificate is revoked there, then the node leaves", async () => {
  const root = tempRoot("nj-leave-revoke-cp-");
  installControlPlaneSecrets(root, { kubernetes: k8s, frontProxy: fp, etcd: etcdCa }, saDir);
  const j = await runCli(
    cfsslControlPlaneJoin(root, "cp1", "127.0.0.11", {
      kubernetes: k8s,
      frontProxy: fp,
      etcd: etcdCa,
    }),
  );
  assert.equal(j.code, 0, j.stderr);
  const serials = installedSerials(root);
  assert.ok(
    serials.size >= 10,
    `a control plane's certificates: ${[...serials.values()].join(", ")}`,
  );
  const good = (ca: CfsslCa) =>
    ca.certificates().filter((r) => serials.has(r.serial_number) && r.status === "good").length;
  assert.equal(good(k8s) + good(fp) + good(etcdCa), serials.size, "all good before the leave");

  const r = await runCli(["leave", "--root", root, "--yes", "--revoke", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as LeaveJson;
  assert.deepEqual(
    out.revocations.map((x) => [x.serialDecimal, x.revoked]).sort(),
    [...serials.keys()].map((s) => [s, true]).sort(),
  );
  // Each CA's database has each of its certificates revoked, reason cessationOfOperation (5).
  for (const ca of [k8s, fp, etcdCa]) {
    for (const row of ca.certificates().filter((x) => serials.has(x.serial_number))) {
      assert.deepEqual(
        [serials.get(row.serial_number), row.status, row.reason],
        [serials.get(row.serial_number), "revoked", 5],
      );
    }
  }
  assert.equal(good(k8s) + good(fp) + good(etcdCa), 0);
  assert.equal(existsSync(join(root, "etc/kubernetes/pki/apiserver.crt")), false, "the node left");
});

test("a CFSSL without a certificate database: exit 10 naming every serial, nothing changed; --force leaves anyway", async () => {
  const [root, serials] = await cfsslWorker(noDb, "nj-leave-revoke-nodb-");
  const beforeLeave = snapshot(root);
  const r = await runCli(["leave", "--root", root, "--yes", "--revoke"]);
  assert.equal(r.code, 10, r.stderr);
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("node-join: error:"));
  assert.equal(errors.length, 1, r.stderr);
  for (const [dec, kind] of serials) {
    assert.ok(errors[0]!.includes(kind), `names ${kind}: ${errors[0]}`);
    assert.ok(errors[0]!.includes(dec), `names serial ${dec}: ${errors[0]}`);
  }
  assert.match(errors[0]!, /no certificate database/);
  assert.deepEqual(diffSnapshots(beforeLeave, snapshot(root)), [], "nothing changed");

  const forced = await runCli(["leave", "--root", root, "--yes", "--revoke", "--force"]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.stderr, /warning: not revoked \(--force\): kubelet-client/);
  assert.match(forced.stdout, /^left worker node \S+: /);
  assert.match(forced.stdout, /\n {2}not revoked kubelet-client serial /);
});

test("step-ca: leave --revoke revokes over mTLS; a copy of the node taken before can no longer renew", async () => {
  const [root, serials] = await stepWorker("nj-leave-revoke-step-", "lr1");
  const copy = copyOf(root, "nj-leave-revoke-copy-");

  const r = await runCli(["leave", "--root", root, "--yes", "--revoke"]);
  assert.equal(r.code, 0, r.stderr);
  for (const [dec, kind] of serials) {
    assert.match(r.stdout, new RegExp(`\\n {2}revoked ${kind} serial `));
    assert.match(stepCaLog(step), new RegExp(`serial=${dec}`));
  }
  const renew = await runCli(["renew", "--root", copy, "--force"]);
  assert.equal(renew.code, 4, renew.stderr);
  assert.match(
    renew.stderr,
    /the CA refused the current certificate \(HTTP 401\): it may be revoked/,
  );
  assert.match(stepCaLog(step), /certificate has been revoked/);
});

test("step-ca control plane (one step-ca for the three CAs): every certificate revoked over mTLS, the tree as before the join", async () => {
  const root = tempRoot("nj-leave-revoke-step-cp-");
  const etc = join(root, "etc/node-join");
  // the host's own directories (leave keeps them): kubeadm's and cron's
  for (const d of ["etc/node-join", "etc/kubernetes/manifests", "var/lib/kubelet", "etc/cron.d"])
    mkdirSync(join(root, d), { recursive: true });
  for (const f of ["sa.key", "sa.pub"]) copyFileSync(join(saDir, f), join(etc, f));
  const beforeJoin = snapshot(root);
  const password = step.provisioners.find((p) => p.name === "control-plane")!.passwordFile;
  const j = await runCli(stepControlPlaneJoin(root, step, password));
  assert.equal(j.code, 0, j.stderr);
  const serials = installedSerials(root);
  assert.ok(serials.size >= 10, [...serials.values()].join(", "));
  const r = await runCli(["leave", "--root", root, "--yes", "--revoke", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    (JSON.parse(r.stdout) as LeaveJson).revocations.map((x) => [x.serialDecimal, x.revoked]).sort(),
    [...serials.keys()].map((s) => [s, true]).sort(),
  );
  const log = stepCaLog(step);
  for (const dec of serials.keys()) assert.match(log, new RegExp(`serial=${dec}\\b`));
  assert.deepEqual(diffSnapshots(beforeJoin, snapshot(root)), []);
});

test("CFSSL with a database: join, renew --force, leave --revoke: all four certificates issued to the worker are revoked", async () => {
  const [root, joinedSerials] = await cfsslWorker(k8s, "nj-leave-revoke-renewed-");
  const renew = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(renew.code, 0, renew.stderr);
  const renewedSerials = installedSerials(root);
  assert.equal(joinedSerials.size + renewedSerials.size, 4);
  const row = (dec: string) => k8s.certificates().find((x) => x.serial_number === dec);
  // The superseded ones are revoked by the renewal itself, reason superseded (RFC 5280: 4).
  for (const dec of joinedSerials.keys())
    assert.deepEqual([dec, row(dec)?.status, row(dec)?.reason], [dec, "revoked", 4]);
  for (const dec of renewedSerials.keys()) assert.equal(row(dec)?.status, "good", dec);

  const r = await runCli(["leave", "--root", root, "--yes", "--revoke"]);
  assert.equal(r.code, 0, r.stderr);
  for (const dec of renewedSerials.keys())
    assert.deepEqual([dec, row(dec)?.status, row(dec)?.reason], [dec, "revoked", 5]);
  for (const dec of [...joinedSerials.keys(), ...renewedSerials.keys()])
    assert.equal(row(dec)?.status, "revoked", dec);
});

test("step-ca: renew --force revokes the superseded certificates; a copy taken before the renewal cannot renew after leave --revoke", async () => {
  const [root, joinedSerials] = await stepWorker("nj-leave-revoke-step-renewed-", "lr2");
  const copy = copyOf(root, "nj-leave-revoke-step-copy-");

  const renew = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(renew.code, 0, renew.stderr);
  assert.doesNotMatch(renew.stderr, /warning/i);
  // step-ca logs each revocation with its serial and reason code (api/revoke.go logRevoke).
  const revokedLines = () =>
    stepCaLog(step)
      .split("\n")
      .filter((l) => /reasonCode=4\b/.test(l));
  for (const dec of joinedSerials.keys())
    assert.ok(
      revokedLines().some((l) => new RegExp(`serial=${dec}\\b`).test(l)),
      `superseded ${joinedSerials.get(dec)} (${dec}) revoked`,
    );

  const r = await runCli(["leave", "--root", root, "--yes", "--revoke"]);
  assert.equal(r.code, 0, r.stderr);
  const copied = await runCli(["renew", "--root", copy, "--force"]);
  assert.equal(copied.code, 4, copied.stderr);
  assert.match(copied.stderr, /the CA refused the current certificate \(HTTP 401\)/);
});
