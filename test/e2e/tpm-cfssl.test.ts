// CFSSL's auth key held in a real software TPM (swtpm), against a real `cfssl serve` through the
// bundle: join imports the key into the TPM and deletes its file, every token is computed in the
// TPM, renew signs with it; a copy of the node's disk on a machine with another TPM cannot renew,
// while the original still can; no TPM, a wrong TCTI, a TPM in use: one line each, nothing written.
import assert from "node:assert/strict";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { useCfssl } from "../helpers/cfssl.js";
import { json, runCli } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { scratchRoots } from "../helpers/fixture.js";
import { useSwtpm } from "../helpers/swtpm.js";

const ca = useCfssl();
const tpm = useSwtpm();
const otherMachine = useSwtpm();
const { newRoot } = scratchRoots("nj-tpm-cfssl-");

const BLOB = "var/lib/node-join/tpm/kubernetes-ca-auth-key.json";
const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Every regular file under `dir`, recursively. */
function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** No file under the root holds the auth key, in hex or in bytes. */
function assertKeyNowhere(root: string): void {
  const hex = Buffer.from(ca.authKeyHex, "utf8");
  const raw = Buffer.from(ca.authKeyHex, "hex");
  for (const f of files(root)) {
    const b = readFileSync(f);
    assert.ok(!b.includes(hex) && !b.includes(raw), `${f} holds the auth key`);
  }
}

const tpmJoin = (root: string, tcti: string, more: Record<string, string> = {}) =>
  cfsslWorkerJoin(root, ca, {
    "ca-auth-key-file": join(root, "etc/node-join/ca-auth.key"),
    "ca-identity": "tpm",
    "tpm-tcti": tcti,
    ...more,
  });

describe("CFSSL auth key in the TPM", () => {
  it("join moves the key into the TPM, renew signs with it; a copied disk cannot, the original still can", async () => {
    const root = newRoot();
    const keyFile = ca.installAuthKey(root);
    const collector = join(root, "var/lib/node_exporter/textfile_collector");
    mkdirSync(collector, { recursive: true });
    const j = await runCli(tpmJoin(root, tpm.tcti));
    assert.equal(j.code, 0, j.stderr);
    assert.match(
      j.stdout,
      new RegExp(
        `moved the CFSSL auth key of ${esc(keyFile)} into the TPM and deleted the file \\(identity: tpm\\)`,
      ),
    );
    assert.equal(existsSync(keyFile), false, "the auth key file is gone");
    assert.equal(statSync(join(root, BLOB)).mode & 0o777, 0o600);
    assert.equal(statSync(join(root, "var/lib/node-join/tpm")).mode & 0o777, 0o700);
    const config = readFileSync(join(root, "etc/node-join/config.yaml"), "utf8");
    assert.match(config, /identity: tpm/);
    assert.ok(config.includes(tpm.tcti), config);
    assertKeyNowhere(root);

    const status = await runCli(["status", "--root", root, "--wide"]);
    assert.match(status.stdout, /^ {2}kubernetes CA \(cfssl\): auth key in the TPM$/m);
    assert.match(
      status.stdout,
      new RegExp(
        `^identity: tpm \\(a copy of the disk carries 0 secret files; TPM-wrapped keys /${esc(BLOB)}\\)$`,
        "m",
      ),
    );
    const statusJson = json<{ identity: unknown }>(
      await runCli(["status", "--root", root, "--json"]),
    );
    assert.deepEqual(statusJson.identity, { where: "tpm", secretFiles: [], tpmKeys: [`/${BLOB}`] });

    const signed = ca.signRequests();
    const renewed = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(renewed.code, 0, renewed.stderr);
    const metrics = readFileSync(join(collector, "node_join.prom"), "utf8");
    assert.match(metrics, /^node_join_identity_info\{where="tpm"\} 1$/m);
    assert.match(metrics, /^node_join_identity_secret_files 0$/m);
    assert.equal(ca.signRequests(), signed + 2, "both kubelet certificates signed by the CA");
    assertKeyNowhere(root);

    // The disk copied to a second machine: its own TPM at the same TCTI (here: the config edited
    // to name the second swtpm, as device:/dev/tpmrm0 names the local TPM on any machine).
    const copy = newRoot();
    cpSync(root, copy, { recursive: true, verbatimSymlinks: true });
    // (a failed run records itself in the metrics textfile: not what this compares)
    rmSync(join(copy, "var/lib/node_exporter"), { recursive: true });
    const copyConfig = join(copy, "etc/node-join/config.yaml");
    writeFileSync(
      copyConfig,
      readFileSync(copyConfig, "utf8").replace(tpm.tcti, otherMachine.tcti),
    );
    const message = `TPM ${otherMachine.tcti} cannot load the node's key: it was wrapped by another TPM (a copy of this node's disk on another machine), or this TPM's storage hierarchy was cleared since: join again with the enrolment secret`;
    const stolen = await expectFailure(
      ["renew", "--root", copy, "--force"],
      6,
      new RegExp(esc(message)),
      copy,
    );
    assert.equal(stolen.stderr.trim().split("\n").at(-1), `node-join: error: ${message}`);
    assert.equal(ca.signRequests(), signed + 2, "no CSR from the copy reached the CA");

    const original = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(original.code, 0, original.stderr);
    assert.equal(ca.signRequests(), signed + 4);
  });

  it("a join again with nothing due keeps working from the TPM alone", async () => {
    const root = newRoot();
    ca.installAuthKey(root);
    assert.equal((await runCli(tpmJoin(root, tpm.tcti))).code, 0);
    const again = await runCli(tpmJoin(root, tpm.tcti));
    assert.equal(again.code, 0, again.stderr);
    assertKeyNowhere(root);
    // leave removes the wrapped key with the node's other secrets
    const left = await runCli(["leave", "--root", root, "--yes"]);
    assert.equal(left.code, 0, left.stderr);
    assert.equal(existsSync(join(root, BLOB)), false);
    assert.equal(existsSync(join(root, "var/lib/node-join")), false);
  });

  it("a wrapped key file others may write is refused before the TPM or the CA is asked", async () => {
    const root = newRoot();
    ca.installAuthKey(root);
    assert.equal((await runCli(tpmJoin(root, tpm.tcti))).code, 0);
    chmodSync(join(root, BLOB), 0o666);
    await expectFailure(
      ["renew", "--root", root, "--force"],
      2,
      new RegExp(esc(join(root, BLOB))),
      root,
    );
  });
});

describe("CFSSL auth key in the TPM: no TPM, a wrong TCTI, a TPM in use", () => {
  it("no TPM device: exit 6 naming it, the key file kept, nothing written", async () => {
    const root = newRoot();
    const keyFile = ca.installAuthKey(root);
    const signed = ca.signRequests();
    await expectFailure(
      tpmJoin(root, "device:/nonexistent/tpmrm0"),
      6,
      /(?:^|error: )TPM device:\/nonexistent\/tpmrm0: no TPM at \/nonexistent\/tpmrm0: the host has no TPM 2\.0, it is off in the firmware, or its driver is not loaded \(ls \/dev\/tpm\*\); or set tpm\.tcti \(--tpm-tcti\)$/m,
      root,
    );
    assert.ok(existsSync(keyFile));
    assert.equal(ca.signRequests(), signed, "nothing sent to the CA");
  });

  it("a TCTI tpm2-tools cannot load: exit 2 naming the setting", async () => {
    const root = newRoot();
    ca.installAuthKey(root);
    await expectFailure(
      tpmJoin(root, "tbs:nothing"),
      2,
      /(?:^|error: )tpm\.tcti \(--tpm-tcti\) "tbs:nothing": tpm2-tools cannot load this TCTI/m,
      root,
    );
  });

  it("a TPM another program holds: exit 6 after the TPM's timeout, nothing written", async () => {
    const root = newRoot();
    ca.installAuthKey(root);
    const hold = connect({ host: "127.0.0.1", port: tpm.port });
    await new Promise((r) => hold.once("connect", r));
    try {
      await expectFailure(
        tpmJoin(root, tpm.tcti),
        6,
        /(?:^|error: )TPM swtpm:\S+: no answer within 10s \(tpm2_createprimary\): another program holds the TPM/m,
        root,
      );
    } finally {
      hold.destroy();
    }
  });
});
