// The X5C machine certificate of the key in the TPM (identity: tpm on a step-ca CA), against the
// real step-ca and a real software TPM (swtpm): renewed at /1.0/renew with a token signed in the
// TPM once two thirds of its life passed, the kubelet's certificates then enrolled with the renewed
// one; a renewal the CA refuses is a warning and the current one still enrols; obtained with the
// JWK provisioner's password instead of a one-time token, the password file kept and counted.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { runCli } from "../helpers/cli.js";
import { scratchRoots } from "../helpers/fixture.js";
import { startStepCa, stepCaLog, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";
import { useSwtpm } from "../helpers/swtpm.js";

const tpm = useSwtpm();
const { newRoot } = scratchRoots("nj-tpm-machine-");
let ca: StepCaHandle;

// step-ca backdates NotBefore by a minute (authority backdate): a certificate of duration D lives
// D + 60 s and two thirds of that have passed 2(D + 60)/3 - 60 s after it was issued. "brief"
// machine certificates (60 s) are due 20 s after issue; "frozen" ones (20 s) at once, and step-ca
// refuses to renew them (claim disableRenewal).
before(async () => {
  ca = await startStepCa({
    provisioners: [
      { name: "brief", claims: { minTLSCertDuration: "1s", defaultTLSCertDuration: "60s" } },
      {
        name: "frozen",
        claims: { minTLSCertDuration: "1s", defaultTLSCertDuration: "20s", disableRenewal: true },
      },
    ],
    x5cProvisioners: [
      {
        name: "machines",
        organization: ["system:nodes"],
        roots: "ca-root",
        template: "x5c-nodes.tpl",
        // An X5C certificate ends with its signer (below): as short as the machine certificate.
        claims: { disableRenewal: true, minTLSCertDuration: "1s" },
      },
    ],
  });
});
after(async () => {
  await ca?.stop();
});

const CERT = "var/lib/node-join/tpm/kubernetes-x5c-machine.crt";
const CLIENT = "var/lib/kubelet/pki/kubelet-client-current.pem";
const SERVING = "var/lib/kubelet/pki/kubelet-server-current.pem";
const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const requests = (path: string) =>
  (stepCaLog(ca).match(new RegExp(`path=${esc(path)} `, "g")) ?? []).length;
const leaf = (root: string, file: string) => new X509Certificate(readFileSync(join(root, file)));
const spki = (c: X509Certificate) => c.publicKey.export({ type: "spki", format: "der" });

/** Every regular file under `dir`, recursively. */
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));

/** JWK provisioner `name`'s password in a 0600 file under the node's /etc/node-join. */
function passwordOf(root: string, step: StepCaHandle, name: string): string {
  const file = join(root, "etc/node-join/ca.password");
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  writeFileSync(file, step.provisioners.find((p) => p.name === name)!.password, { mode: 0o600 });
  return file;
}

/** A one-time token of JWK provisioner `provisioner` for the machine certificate of `name`. */
async function machineToken(root: string, provisioner: string, name: string): Promise<string> {
  const token = await ca.mintToken(provisioner, name, [name]);
  const file = join(root, "etc/node-join/machine.token");
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

const tpmJoin = (root: string, name: string, more: Record<string, string> = {}) =>
  stepWorkerJoin(root, ca, {
    "node-name": name,
    "ca-provisioner": "machines",
    "ca-identity": "tpm",
    "tpm-tcti": tpm.tcti,
    ...more,
  });

describe("step-ca X5C in the TPM: the machine certificate itself", () => {
  it("is renewed with a token the TPM signs once two thirds of its life passed, and enrols the kubelet's then", async () => {
    const root = newRoot();
    const tokenFile = await machineToken(root, "brief", "m1");
    const j = await runCli(tpmJoin(root, "m1", { "ca-token-file": tokenFile }));
    assert.equal(j.code, 0, j.stderr);
    const kept = readFileSync(join(root, CERT), "utf8");
    const first = leaf(root, CERT);
    const from = Date.parse(first.validFrom);
    const due = from + ((Date.parse(first.validTo) - from) * 2) / 3;

    // Not due yet: the kubelet's are enrolled again with the kept machine certificate.
    const renewals = requests("/1.0/renew");
    const early = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(early.code, 0, early.stderr);
    assert.ok(Date.now() < due, "the first renew ran before two thirds of the life passed");
    assert.equal(requests("/1.0/renew"), renewals, "not renewed before it is due");
    assert.equal(readFileSync(join(root, CERT), "utf8"), kept, "the machine certificate kept");

    await sleep(due - Date.now() + 1000);
    const signs = requests("/1.0/sign");
    const renewed = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.equal(requests("/1.0/renew") - renewals, 1, "the machine certificate renewed once");
    assert.equal(requests("/1.0/sign") - signs, 2, "both kubelet's enrolled over X5C");
    const second = leaf(root, CERT);
    assert.ok(Date.parse(second.validTo) > Date.parse(first.validTo), "a later notAfter");
    assert.deepEqual(spki(second), spki(first), "the same key, the TPM's");
    assert.equal(second.subject, first.subject);
    // step-ca caps an X5C certificate at its signer's notAfter (authority/provisioner/x5c.go): one
    // beyond the first machine certificate's was signed for with the renewed one.
    for (const f of [CLIENT, SERVING]) {
      const kubelet = leaf(root, f);
      assert.ok(
        Date.parse(kubelet.validTo) > Date.parse(first.validTo),
        `${f} enrolled with the renewed machine certificate`,
      );
    }
  });

  it("a renewal the CA refuses is a warning: the current one still enrols while valid", async () => {
    const root = newRoot();
    const tokenFile = await machineToken(root, "frozen", "m2");
    const j = await runCli(tpmJoin(root, "m2", { "ca-token-file": tokenFile }));
    assert.equal(j.code, 0, j.stderr);
    const machine = readFileSync(join(root, CERT), "utf8");

    const renewals = requests("/1.0/renew");
    const signs = requests("/1.0/sign");
    const r = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(requests("/1.0/renew") - renewals, 1, "the renewal was asked");
    assert.match(
      r.stderr + r.stdout,
      /WARNING: .*HTTP 401.*; enrolling with the current one until it expires/,
    );
    assert.equal(requests("/1.0/sign") - signs, 2, "both kubelet's enrolled over X5C");
    assert.equal(readFileSync(join(root, CERT), "utf8"), machine, "the machine certificate kept");
  });

  it("obtained with the provisioner password: the password file is kept and counted", async () => {
    // The password mints the machine certificate's token for the CA's one JWK provisioner while
    // --ca-provisioner names the X5C one.
    const single = await startStepCa({
      provisioners: [{ name: "workers" }],
      x5cProvisioners: [
        {
          name: "machines",
          organization: ["system:nodes"],
          roots: "ca-root",
          template: "x5c-nodes.tpl",
        },
      ],
    });
    try {
      const root = newRoot();
      const passwordFile = passwordOf(root, single, "workers");
      const signs = () => (stepCaLog(single).match(/path=\/1\.0\/sign /g) ?? []).length;
      const j = await runCli(
        stepWorkerJoin(root, single, {
          "node-name": "m3",
          "ca-provisioner": "machines",
          "ca-identity": "tpm",
          "tpm-tcti": tpm.tcti,
          "ca-password-file": passwordFile,
        }),
      );
      assert.equal(j.code, 0, j.stderr);
      assert.equal(signs(), 3, "the machine certificate, then two kubelet's");
      assert.match(j.stderr + j.stdout, /obtained the X5C machine certificate/);
      assert.match(stepCaLog(single), /provisioner="workers /, "the machine certificate: JWK");
      assert.match(stepCaLog(single), /provisioner=machines/);
      assert.ok(existsSync(passwordFile), "the provisioner's reusable password is not deleted");
      assert.doesNotMatch(j.stdout, /its one-time tokens are spent/);
      assert.equal(leaf(root, CERT).subject, "CN=m3");
      const status = await runCli(["status", "--root", root, "--wide"]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(
        status.stdout,
        new RegExp(
          `^identity: file \\(.*1 secret file.*${esc(passwordFile.slice(root.length))}`,
          "m",
        ),
        status.stdout,
      );
    } finally {
      await single.stop();
    }
  });

  it("the password with several JWK provisioners: one line naming them, nothing written", async () => {
    const root = newRoot();
    const passwordFile = passwordOf(root, ca, "brief");
    const before = files(root);
    const signs = requests("/1.0/sign");
    const j = await runCli(tpmJoin(root, "m4", { "ca-password-file": passwordFile }));
    assert.equal(j.code, 2, j.stderr);
    assert.match(
      j.stderr,
      /--ca-provisioner names the X5C one \("machines"\) and the CA has several \(brief, frozen\): give a one-time token for the machine certificate \(--ca-token-file\) instead/,
    );
    assert.equal(j.stderr.trim().split("\n").length, 3, j.stderr);
    assert.equal(requests("/1.0/sign"), signs, "no CSR sent");
    assert.deepEqual(files(root), before, "nothing written");
  });
});
