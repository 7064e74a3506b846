// X5C enrolment against the real step-ca (test/helpers/stepca.ts): one CA with the JWK
// provisioners and an X5C provisioner whose roots are a "machine CA" made here, which issues the
// certificates a node gets at PXE time. A worker joins with only its machine certificate and key
// (no password or token file on the node); what the node cannot use is refused before any request.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EKU, mint, privateKeyPem, type Minted } from "../helpers/chains.js";
import { json, runCli } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { tempRoot } from "../helpers/fs.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import { startStepCa, stepCaLog, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";

const DAY = 86400_000;
let ca: StepCaHandle;
let machineCa: Minted, machineInt: Minted, foreignCa: Minted;

before(async () => {
  machineCa = await mint({ cn: "PXE machine root", ca: true });
  machineInt = await mint({ cn: "PXE machine intermediate", ca: true, issuer: machineCa });
  foreignCa = await mint({ cn: "someone else's machine CA", ca: true });
  ca = await startStepCa({
    x5cProvisioners: [
      { name: "machines", organization: ["system:nodes"], roots: machineCa.pem },
      // Certificates that expire while a test waits (step-ca backdates NotBefore by a minute),
      // and that step-ca does not renew once expired: renew enrols again.
      {
        name: "machines-brief",
        organization: ["system:nodes"],
        roots: machineCa.pem,
        claims: {
          minTLSCertDuration: "1s",
          defaultTLSCertDuration: "4s",
          allowRenewalAfterExpiry: false,
        },
      },
    ],
  });
});
after(async () => {
  await ca?.stop();
});

/** A machine certificate as provisioning leaves it: client auth, digitalSignature. */
const machineCert = (
  cn: string,
  issuer: Minted,
  o: { notBefore?: Date; notAfter?: Date; keys?: CryptoKeyPair } = {},
): Promise<Minted> => mint({ cn, issuer, ekus: [EKU.clientAuth], ...o });

/** The notAfter of an expired machine certificate: a day ago, in whole seconds as X.509 has it. */
const aDayAgo = () => new Date(Math.floor((Date.now() - DAY) / 1000) * 1000);

/** `leaf` again, for the same key, expired on `notAfter`. */
const expiredAgain = (leaf: Minted, notAfter = aDayAgo()): Promise<Minted> =>
  machineCert(leaf.cert.subjectName.getField("CN")[0]!, machineInt, {
    keys: leaf.keys,
    notBefore: new Date(Date.now() - 30 * DAY),
    notAfter,
  });

/** machine.crt (0644: leaf, then chain) and machine.key (0600) in the root's /etc/node-join. */
async function machineFiles(
  root: string,
  leaf: Minted,
  chain: Minted[],
  keyOf: Minted = leaf,
  keyMode = 0o600,
): Promise<{ cert: string; key: string }> {
  const dir = join(root, "etc/node-join");
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, "machine.crt");
  const key = join(dir, "machine.key");
  writeFileSync(cert, [leaf, ...chain].map((m) => m.pem).join(""), { mode: 0o644 });
  writeFileSync(key, await privateKeyPem(keyOf), { mode: keyMode });
  chmodSync(key, keyMode);
  return { cert, key };
}

const x5cJoin = (root: string, name: string, f: { cert: string; key: string }, more = {}) =>
  stepWorkerJoin(root, ca, {
    "node-name": name,
    "ca-provisioner": "machines",
    "ca-x5c-cert": f.cert,
    "ca-x5c-key": f.key,
    ...more,
  });

/** The run fails with exactly this one line (and the same in --json), changing nothing. */
async function failsWith(args: string[], code: number, message: string, root: string) {
  const r = await expectFailure(
    args,
    code,
    new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")),
    root,
  );
  assert.equal(r.stderr, `node-join: error: ${message}\n`);
}

const requests = (path: string) =>
  (stepCaLog(ca).match(new RegExp(`path=${path.replace(/\//g, "\\/")} `, "g")) ?? []).length;

test("a worker joins with only its machine certificate and key: O=system:nodes, verified, the paths persisted", async () => {
  const root = tempRoot("nj-x5c-");
  const leaf = await machineCert("machine-x1", machineInt);
  const files = await machineFiles(root, leaf, [machineInt]);

  // The dry run checks the inputs and the provisioner and spends nothing.
  const signs = requests("/1.0/sign");
  const dry = await runCli([...x5cJoin(root, "x1", files), "--dry-run"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(requests("/1.0/sign"), signs, "the dry run sent no CSR");

  const r = await runCli([...x5cJoin(root, "x1", files), "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    json<{ issued: { kind: string }[] }>(r).issued.map((i) => i.kind),
    ["kubelet-client", "kubelet-server"],
  );
  assert.equal(requests("/1.0/sign") - signs, 2);
  const rootFile = join(root, "etc/kubernetes/pki/ca.crt");
  for (const prefix of ["kubelet-client", "kubelet-server"]) {
    const text = readFileSync(join(root, "var/lib/kubelet/pki", `${prefix}-current.pem`), "utf8");
    const certs = text.match(/-----BEGIN CERTIFICATE-----\n[\s\S]*?-----END CERTIFICATE-----\n/g)!;
    assert.ok(opensslVerifies(certs.join(""), rootFile), `${prefix} chains to the step-ca root`);
    const info = opensslInfo(certs[0]!);
    assert.equal(info.cn, "system:node:x1");
    assert.deepEqual(info.o, ["system:nodes"], `${prefix}: O forced by the X5C provisioner`);
  }
  assert.match(stepCaLog(ca), /provisioner=machines/);
  const config = readFileSync(join(root, "etc/node-join/config.yaml"), "utf8");
  assert.match(config, /x5cCertFile: \/etc\/node-join\/machine\.crt/);
  assert.match(config, /x5cKeyFile: \/etc\/node-join\/machine\.key/);
  assert.doesNotMatch(config, /PRIVATE KEY|passwordFile|tokenFile/);
  const key = await privateKeyPem(leaf);
  assert.ok(!r.stdout.includes(key.split("\n")[1]!) && !r.stderr.includes(key.split("\n")[1]!));

  // Renewal authenticates with the node's own certificate (mTLS), not the machine certificate:
  // one that expired since does not fail it.
  const expired = await expiredAgain(leaf);
  writeFileSync(files.cert, expired.pem + machineInt.pem);
  const rekeys = requests("/1.0/rekey");
  const renew = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(renew.code, 0, renew.stderr);
  assert.equal(requests("/1.0/rekey") - rekeys, 2, "both renewed over mTLS");
  assert.equal(requests("/1.0/sign") - signs, 2, "renewal enrolled nothing");
});

test("a machine certificate from a foreign CA: exit 4, one line, no CSR sent", async () => {
  const root = tempRoot("nj-x5c-");
  const files = await machineFiles(root, await machineCert("machine-x2", foreignCa), []);
  const signs = requests("/1.0/sign");
  await failsWith(
    x5cJoin(root, "x2", files),
    4,
    `CA kubernetes (step-ca ${ca.url}): the machine certificate in ${files.cert} (CN "machine-x2", issuer "someone else's machine CA") does not chain to the roots of X5C provisioner "machines" ("PXE machine root"); no CSR was sent`,
    root,
  );
  assert.equal(requests("/1.0/sign"), signs);
});

test("an expired machine certificate: exit 2 before any request, naming its notAfter", async () => {
  const root = tempRoot("nj-x5c-");
  const notAfter = aDayAgo();
  const leaf = await expiredAgain(await machineCert("machine-x3", machineInt), notAfter);
  const files = await machineFiles(root, leaf, [machineInt]);
  const before = stepCaLog(ca).length;
  await failsWith(
    x5cJoin(root, "x3", files),
    2,
    `CA kubernetes: step-ca X5C machine certificate file ${files.cert} (--ca-x5c-cert, config cas.kubernetes.x5cCertFile): the machine certificate (CN "machine-x3") expired on ${notAfter.toISOString()}: X5C enrolment needs a currently valid one`,
    root,
  );
  assert.equal(stepCaLog(ca).length, before, "the CA saw no request");
});

test("a key that is not the machine certificate's: exit 2", async () => {
  const root = tempRoot("nj-x5c-");
  const leaf = await machineCert("machine-x4", machineInt);
  const other = await machineCert("machine-x4b", machineInt);
  const files = await machineFiles(root, leaf, [machineInt], other);
  await failsWith(
    x5cJoin(root, "x4", files),
    2,
    `CA kubernetes: step-ca X5C machine key file ${files.key} (--ca-x5c-key, config cas.kubernetes.x5cKeyFile): it is not the key of the machine certificate (CN "machine-x4")`,
    root,
  );
});

test("a machine key others may read: exit 2, as for the password file", async () => {
  const root = tempRoot("nj-x5c-");
  const leaf = await machineCert("machine-x5", machineInt);
  const files = await machineFiles(root, leaf, [machineInt], leaf, 0o644);
  await failsWith(
    x5cJoin(root, "x5", files),
    2,
    `step-ca X5C machine key file ${files.key} is readable by group or others (mode 0644); fix with: chmod 600 ${files.key}`,
    root,
  );
});

test("the machine certificate and a provisioner password together: exit 2 naming both", async () => {
  const root = tempRoot("nj-x5c-");
  const leaf = await machineCert("machine-x6", machineInt);
  const files = await machineFiles(root, leaf, [machineInt]);
  const pw = join(root, "etc/node-join/workers.password");
  writeFileSync(pw, "pw\n", { mode: 0o600 });
  await failsWith(
    x5cJoin(root, "x6", files, { "ca-provisioner": "workers", "ca-password-file": pw }),
    2,
    `CA kubernetes: --ca-x5c-cert/--ca-x5c-key (X5C enrolment) and --ca-password-file ${pw} are mutually exclusive: give the machine certificate or the provisioner password, not both`,
    root,
  );
});

test("an expired node certificate is enrolled again with the machine certificate; once that expired too, renew exits 4 saying so", async () => {
  const root = tempRoot("nj-x5c-");
  const leaf = await machineCert("machine-x7", machineInt);
  const files = await machineFiles(root, leaf, [machineInt]);
  const kubeletNotAfter = () => {
    const pem = readFileSync(join(root, "var/lib/kubelet/pki/kubelet-client-current.pem"), "utf8");
    return new X509Certificate(pem).validTo;
  };
  const expire = () =>
    new Promise((res) =>
      setTimeout(res, Math.max(0, Date.parse(kubeletNotAfter()) - Date.now()) + 1500),
    );
  const j = await runCli(x5cJoin(root, "x7", files, { "ca-provisioner": "machines-brief" }));
  assert.equal(j.code, 0, j.stderr);
  await expire();
  const signs = requests("/1.0/sign");
  const again = await runCli(["renew", "--root", root]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /expired on .*: enrolling kubelet-client again/);
  assert.equal(requests("/1.0/sign") - signs, 2, "enrolled again with x5c tokens");

  const notAfter = aDayAgo();
  const expired = await expiredAgain(leaf, notAfter);
  writeFileSync(files.cert, expired.pem + machineInt.pem);
  await expire();
  const r = await runCli(["renew", "--root", root]);
  assert.equal(r.code, 4, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `\\nnode-join: error: CA kubernetes \\(step-ca ${ca.url}\\): kubelet-\\w+ expired on \\S+ and the CA refused to renew it with a token signed by its key \\(HTTP 401\\): its provisioner does not allow renewal after expiry \\(claim allowRenewalAfterExpiry\\), or the certificate was revoked, so it cannot be renewed, and X5C enrolment cannot replace it: step-ca X5C machine certificate file ${files.cert} \\(--ca-x5c-cert, config cas\\.kubernetes\\.x5cCertFile\\): the machine certificate \\(CN "machine-x7"\\) expired on ${notAfter.toISOString().replace(/\./g, "\\.")}: X5C enrolment needs a currently valid one\n$`,
    ),
  );
  assert.equal(requests("/1.0/sign") - signs, 2, "nothing more was sent");
});
