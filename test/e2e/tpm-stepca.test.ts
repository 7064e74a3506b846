// step-ca X5C enrolment with the machine key in a real software TPM (swtpm), against the real
// step-ca: join makes the key in the TPM, obtains its machine certificate with one one-time token
// (the CSR signed in the TPM), enrols the kubelet's certificates with X5C tokens signed in the TPM;
// renew enrols them again the same way, with renewal disabled on the X5C provisioner. A copy of the
// disk with another TPM cannot, the original still can; no TPM, a wrong TCTI: one line, nothing
// written.
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { runCli } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { scratchRoots } from "../helpers/fixture.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import { startStepCa, stepCaLog, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";
import { useSwtpm } from "../helpers/swtpm.js";

const tpm = useSwtpm();
const otherMachine = useSwtpm();
const { newRoot } = scratchRoots("nj-tpm-stepca-");
let ca: StepCaHandle;

before(async () => {
  ca = await startStepCa({
    x5cProvisioners: [
      // Machine certificates are this CA's own (the "workers" JWK provisioner issues them once);
      // the kubelet's certificates cannot be renewed: only the TPM's key enrols them again.
      {
        name: "machines",
        organization: ["system:nodes"],
        roots: "ca-root",
        template: "x5c-nodes.tpl",
        claims: { disableRenewal: true },
      },
    ],
  });
});
after(async () => {
  await ca?.stop();
});

const KEY = "var/lib/node-join/tpm/kubernetes-x5c-key.json";
const CERT = "var/lib/node-join/tpm/kubernetes-x5c-machine.crt";
const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const requests = (path: string) =>
  (stepCaLog(ca).match(new RegExp(`path=${esc(path)} `, "g")) ?? []).length;

/** Every regular file under `dir`, recursively. */
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));

/** A one-time token for the machine certificate of node `name` (`step ca token <name>`). */
async function machineToken(root: string, name: string): Promise<string> {
  const token = await ca.mintToken("workers", name, [name]);
  const file = join(root, "etc/node-join/machine.token");
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

const tpmJoin = (root: string, name: string, tcti: string, more: Record<string, string> = {}) =>
  stepWorkerJoin(root, ca, {
    "node-name": name,
    "ca-provisioner": "machines",
    "ca-identity": "tpm",
    "tpm-tcti": tcti,
    ...more,
  });

/**
 * t1's kubelet client certificate and key, stolen from its disk, used as an X5C machine
 * certificate (key-file mode) to enrol t1 again on another machine: the same root issued it, but
 * x5c-nodes.tpl refuses a Kubernetes identity, so step-ca issues nothing; t1's TPM still enrols.
 */
async function stolenKubeletKeyRefused(root: string): Promise<void> {
  const pem = readFileSync(join(root, "var/lib/kubelet/pki/kubelet-client-current.pem"), "utf8");
  const blocks = (label: string) =>
    pem.match(new RegExp(`-----BEGIN ${label}-----\\n[\\s\\S]*?-----END ${label}-----\\n`, "g")) ??
    [];
  const attacker = newRoot();
  const dir = join(attacker, "etc/node-join");
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, "machine.crt");
  const key = join(dir, "machine.key");
  writeFileSync(cert, blocks("CERTIFICATE").join(""));
  writeFileSync(key, blocks("(?:EC |RSA )?PRIVATE KEY").join(""), { mode: 0o600 });
  assert.equal(opensslInfo(readFileSync(cert, "utf8")).cn, "system:node:t1");
  const signs = requests("/1.0/sign");
  const logStart = stepCaLog(ca).length;
  await expectFailure(
    stepWorkerJoin(attacker, ca, {
      "node-name": "t1",
      "ca-provisioner": "machines",
      "ca-x5c-cert": cert,
      "ca-x5c-key": key,
    }),
    4,
    /signing kubelet-\w+: HTTP 400: .*x5c-nodes\.tpl: the token is signed by "system:node:t1", a Kubernetes identity, not a machine certificate/,
    attacker,
  );
  // Every CSR reached step-ca and its template refused it there: nothing issued.
  const log = stepCaLog(ca).slice(logStart);
  const asked = requests("/1.0/sign") - signs;
  assert.ok(asked >= 1, "the CSRs reached the CA");
  assert.equal((log.match(/path=\/1\.0\/sign .*status=400/g) ?? []).length, asked, "all refused");
  assert.doesNotMatch(log, /path=\/1\.0\/sign .*status=20/, "nothing issued");
  assert.match(
    log,
    /error="x5c-nodes\.tpl: the token is signed by \\"system:node:t1\\", a Kubernetes identity/,
  );

  const renewSigns = requests("/1.0/sign");
  const renewed = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(renewed.code, 0, renewed.stderr);
  assert.equal(requests("/1.0/sign") - renewSigns, 2, "t1's TPM still enrols both");
}

describe("step-ca X5C with the machine key in the TPM", () => {
  it("join obtains the machine certificate once, enrols with the TPM; renew enrols again; a copied disk cannot", async () => {
    const root = newRoot();
    const tokenFile = await machineToken(root, "t1");
    const signs = requests("/1.0/sign");
    const j = await runCli([...tpmJoin(root, "t1", tpm.tcti, { "ca-token-file": tokenFile })]);
    assert.equal(j.code, 0, j.stderr);
    assert.equal(requests("/1.0/sign") - signs, 3, "the machine certificate, then two kubelet's");
    assert.match(j.stderr + j.stdout, /obtained the X5C machine certificate/);
    // The one-time token is spent: deleted, so the disk holds nothing that enrols.
    assert.ok(!existsSync(tokenFile), "the spent token file is deleted");
    assert.match(j.stdout, /deleted .*machine\.token: its one-time tokens are spent/);
    assert.equal(statSync(join(root, KEY)).mode & 0o777, 0o600);
    const machine = readFileSync(join(root, CERT), "utf8");
    assert.equal(opensslInfo(machine).cn, "t1");
    // The kubelet's keys are files (it reads them); the machine key is in the TPM alone.
    for (const f of files(root))
      if (!f.includes("var/lib/kubelet/pki/"))
        assert.doesNotMatch(readFileSync(f, "latin1"), /PRIVATE KEY/, `${f} holds a private key`);
    const rootFile = join(root, "etc/kubernetes/pki/ca.crt");
    const client = readFileSync(
      join(root, "var/lib/kubelet/pki/kubelet-client-current.pem"),
      "utf8",
    );
    const leaf = client.match(/-----BEGIN CERTIFICATE-----\n[\s\S]*?-----END CERTIFICATE-----\n/g)!;
    assert.ok(opensslVerifies(leaf.join(""), rootFile));
    assert.equal(opensslInfo(leaf[0]!).cn, "system:node:t1");
    assert.match(stepCaLog(ca), /provisioner=machines/);
    const config = readFileSync(join(root, "etc/node-join/config.yaml"), "utf8");
    assert.match(config, /identity: tpm/);
    const status = await runCli(["status", "--root", root, "--wide"]);
    assert.match(
      status.stdout,
      new RegExp(
        `^identity: tpm \\(a copy of the disk carries 0 secret files; TPM-wrapped keys /${esc(KEY)}\\)$`,
        "m",
      ),
      status.stdout,
    );

    // renew: the provisioner disables renewal, the TPM's key enrols both again (no token left).
    const renewSigns = requests("/1.0/sign");
    const mtls = requests("/1.0/rekey") + requests("/1.0/renew");
    const renewed = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.equal(requests("/1.0/sign") - renewSigns, 2, "both enrolled again over X5C");
    assert.equal(requests("/1.0/rekey") + requests("/1.0/renew"), mtls, "no renewal asked");
    assert.equal(readFileSync(join(root, CERT), "utf8"), machine, "the machine certificate kept");

    // The disk copied to a machine with another TPM: the blob does not load there.
    const copy = newRoot();
    cpSync(root, copy, { recursive: true, verbatimSymlinks: true });
    const copyConfig = join(copy, "etc/node-join/config.yaml");
    writeFileSync(
      copyConfig,
      readFileSync(copyConfig, "utf8").replace(tpm.tcti, otherMachine.tcti),
    );
    const before = files(copy).map((f) => [f, readFileSync(f)] as const);
    const message = `TPM ${otherMachine.tcti} cannot load the node's key`;
    const copySigns = requests("/1.0/sign");
    const stolen = await expectFailure(
      ["renew", "--root", copy, "--force"],
      6,
      new RegExp(esc(message)),
      copy,
    );
    assert.match(
      stolen.stderr.trim().split("\n").at(-1)!,
      new RegExp(
        `^node-join: error: ${esc(message)}: .*: remove ${esc(join(copy, KEY))} and ${esc(join(copy, CERT))}, then join with a new one-time token$`,
      ),
    );
    assert.equal(requests("/1.0/sign"), copySigns, "no CSR from the copy reached the CA");
    for (const [f, b] of before) assert.deepEqual(readFileSync(f), b, `${f} unchanged`);

    const original = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(original.code, 0, original.stderr);
    assert.equal(requests("/1.0/sign") - copySigns, 2);

    await stolenKubeletKeyRefused(root);

    // leave removes the wrapped key and its machine certificate with the node's other secrets.
    const left = await runCli(["leave", "--root", root, "--yes"]);
    assert.equal(left.code, 0, left.stderr);
    assert.equal(existsSync(join(root, KEY)), false);
    assert.equal(existsSync(join(root, CERT)), false);
    assert.equal(existsSync(join(root, "var/lib/node-join")), false);
  });

  it("a machine enrols its own node alone: t2's machine certificate asking for t1's names is refused by x5c-nodes.tpl", async () => {
    const root = newRoot();
    const tokenFile = await machineToken(root, "t2");
    const j = await runCli(tpmJoin(root, "t2", otherMachine.tcti, { "ca-token-file": tokenFile }));
    assert.equal(j.code, 0, j.stderr);
    const signs = requests("/1.0/sign");
    const logStart = stepCaLog(ca).length;
    const asT1 = await runCli([...tpmJoin(root, "t1", otherMachine.tcti), "--force"]);
    assert.equal(asT1.code, 4, asT1.stderr);
    assert.match(
      asT1.stderr,
      /x5c-nodes\.tpl: the machine certificate of \\?"t2\\?" enrols \\?"system:node:t2\\?" only, not \\?"system:node:t1\\?"/,
    );
    const log = stepCaLog(ca).slice(logStart);
    assert.ok(requests("/1.0/sign") > signs, "the CSRs reached the CA");
    assert.doesNotMatch(log, /path=\/1\.0\/sign .*status=20/, "nothing issued");
    assert.equal(
      opensslInfo(
        readFileSync(join(root, "var/lib/kubelet/pki/kubelet-client-current.pem"), "utf8"),
      ).cn,
      "system:node:t2",
      "t2's certificates unchanged",
    );
  });

  it("a wrong TCTI, or no machine token: one line, nothing written", async () => {
    const root = newRoot();
    const tokenFile = await machineToken(root, "t2");
    const before = files(root);
    const wrong = await runCli(
      tpmJoin(root, "t2", "swtpm:host=127.0.0.1,port=1", { "ca-token-file": tokenFile }),
    );
    assert.equal(wrong.code, 6, wrong.stderr);
    assert.equal(wrong.stderr.trim().split("\n").length, 1, wrong.stderr);
    assert.match(wrong.stderr, /TPM swtpm:host=127\.0\.0\.1,port=1/);
    assert.deepEqual(files(root), before, "nothing written");

    const signs = requests("/1.0/sign");
    const none = await runCli(tpmJoin(root, "t2", tpm.tcti));
    assert.equal(none.code, 2, none.stderr);
    assert.match(
      none.stderr,
      /no machine certificate yet: give a one-time token for it \(CN t2, SANs t2: step ca token t2/,
    );
    assert.equal(requests("/1.0/sign"), signs, "no CSR sent");
    assert.deepEqual(files(root), before, "nothing written");
    assert.equal(existsSync(join(root, KEY)), false);
  });
});
