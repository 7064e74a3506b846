// Revocation at the CAs, as `leave --revoke` asks for it (CaBackend.revoke through
// ca/index.ts createBackend), against the real servers: CFSSL with a certificate database (the
// sqlite one Debian's cfssl 1.2 fills) marks a certificate node-join issued revoked; one without a
// database, or a certificate it never recorded, is refused by name. step-ca revokes over mTLS with
// the certificate itself and refuses to renew it from then on, which node-join's renew reports.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CaBackend, RevokeRequest } from "../../agent/ca/backend.js";
import type { CaSettings } from "../../agent/ca/index.js";
import { createBackend, readCaInputs } from "../../agent/ca/index.js";
import { systemClock } from "../../agent/common/clock.js";
import { CaRefusedError } from "../../agent/common/errors.js";
import { CAS } from "../../agent/pki/cas.js";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { freePort, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { startStepCa, stepCaLog, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";

const PKI = "var/lib/kubelet/pki";

/** The installed kubelet file of `kind`: its leaf (first certificate) and key. */
function installed(root: string, kind: string): { certPem: string; keyPem: string } {
  const text = readFileSync(join(root, PKI, `${kind}-current.pem`), "utf8");
  const cert = /-----BEGIN CERTIFICATE-----\n[\s\S]*?-----END CERTIFICATE-----\n/.exec(text)![0];
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----\n/.exec(
    text,
  )![0];
  return { certPem: cert, keyPem: key };
}

/** What openssl says of a certificate: its serial in decimal and its AKI as hex (lower case). */
function opensslIds(certPem: string): { serial: string; aki: string } {
  const out = execFileSync(
    "openssl",
    ["x509", "-noout", "-serial", "-ext", "authorityKeyIdentifier"],
    { input: certPem },
  ).toString();
  const hex = /^serial=([0-9A-F]+)/m.exec(out)![1]!;
  const aki = /^\s+(?:keyid:)?([0-9A-F:]{20,})\s*$/m.exec(out)![1]!;
  return { serial: BigInt(`0x${hex}`).toString(), aki: aki.replace(/:/g, "").toLowerCase() };
}

async function backend(settings: CaSettings): Promise<CaBackend> {
  const env = {};
  const b = createBackend({
    ca: CAS.kubernetes,
    settings,
    unsafeSkipCaVerification: false,
    secrets: readCaInputs(CAS.kubernetes, settings, env, { renewal: true, now: Date.now() }),
    env,
    clock: systemClock,
    deadline: Date.now() + 20_000,
    log: () => {},
  });
  await b.fetchCaBundle();
  return b;
}

const request = (root: string, kind: string): RevokeRequest => ({
  kind,
  ...installed(root, kind),
  reason: "cessationOfOperation",
});

/** The one error line of a run's stderr (after its progress lines). */
function errorLine(stderr: string): string {
  const errors = stderr.split("\n").filter((l) => l.startsWith("node-join: error:"));
  assert.equal(errors.length, 1, stderr);
  return `${errors[0]}\n`;
}

/** The refusal `p` rejects with, which must be a CaRefusedError (exit 4). */
async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof CaRefusedError, String(err));
  return err.message;
}

describe("CFSSL", () => {
  let withDb: CfsslCa;
  /** The same CA served without a certificate database. */
  let noDb: CfsslCa;
  let root = "";
  before(async () => {
    withDb = await startCfssl({ db: true });
    noDb = await startCfssl({
      ca: { cert: withDb.caCertFile, key: withDb.caKeyFile },
      authKeyHex: withDb.authKeyHex,
    });
    root = tempRoot("nj-revoke-cfssl-");
    const j = await runCli(
      cfsslWorkerJoin(root, withDb, { "ca-auth-key-file": withDb.installAuthKey(root) }),
    );
    assert.equal(j.code, 0, j.stderr);
  });
  after(async () => {
    await withDb?.stop();
    await noDb?.stop();
  });

  const settings = (ca: CfsslCa): CaSettings => ({
    type: "cfssl",
    urls: [ca.url],
    certHashes: [ca.pin],
  });
  const row = (serial: string) => withDb.certificates().find((r) => r.serial_number === serial);

  test("a certificate node-join issued is good in the CA's database, revoked after revoke() with its reason", async () => {
    const req = request(root, "kubelet-client");
    const { serial } = opensslIds(req.certPem);
    // Debian's cfssl 1.2 records the authority key id empty, although the leaf carries one.
    assert.deepEqual(
      { ...row(serial)!, revoked_at: undefined },
      {
        serial_number: serial,
        authority_key_identifier: "",
        ca_label: "",
        status: "good",
        reason: 0,
        revoked_at: undefined,
      },
    );
    const b = await backend(settings(withDb));
    await b.revoke!(req);
    assert.equal(row(serial)!.status, "revoked");
    assert.equal(row(serial)!.reason, 5, "RFC 5280 cessationOfOperation");
    assert.match(row(serial)!.revoked_at, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    // Revoking again (a leave run again after a crash) succeeds.
    await b.revoke!(req);
    assert.equal(row(serial)!.status, "revoked");
  });

  test("a CA that stores the real authority key id (later cfssl versions) is matched on it", async () => {
    const req = request(root, "kubelet-server");
    const { serial, aki } = opensslIds(req.certPem);
    withDb.sql(
      `UPDATE certificates SET authority_key_identifier = '${aki}' WHERE serial_number = '${serial}'`,
    );
    await (
      await backend(settings(withDb))
    ).revoke!({ ...req, reason: "keyCompromise" });
    assert.deepEqual(
      [row(serial)!.authority_key_identifier, row(serial)!.status, row(serial)!.reason],
      [aki, "revoked", 1],
    );
  });

  test("revoke goes through the CA's servers as sign does: a dead first server, the next one answers", async () => {
    const req = request(root, "kubelet-client");
    const { serial } = opensslIds(req.certPem);
    const dead = `http://127.0.0.1:${await freePort()}`;
    const b = await backend({ ...settings(withDb), urls: [dead, withDb.url] });
    await b.revoke!({ ...req, reason: "superseded" });
    assert.equal(b.answered!(), withDb.url);
    assert.deepEqual([row(serial)!.status, row(serial)!.reason], ["revoked", 4]);
  });

  test("a CA without a certificate database refuses by name: no database, the serial, the server", async () => {
    const req = request(root, "kubelet-client");
    const { serial } = opensslIds(req.certPem);
    assert.equal(
      await refusal((await backend(settings(noDb))).revoke!(req)),
      `CA kubernetes (cfssl ${noDb.url}): cannot revoke kubelet-client (serial ${serial}): the CA has no certificate database (cfssl serve -db-config): revoke it there once it has one, or let it expire`,
    );
  });

  test("a certificate the database never recorded (a serial it does not know) is refused", async () => {
    // The same CA signed it, but through the server without a database.
    const other = tempRoot("nj-revoke-cfssl-nodb-");
    const j = await runCli(
      cfsslWorkerJoin(other, noDb, { "ca-auth-key-file": noDb.installAuthKey(other) }),
    );
    assert.equal(j.code, 0, j.stderr);
    const req = request(other, "kubelet-client");
    const { serial, aki } = opensslIds(req.certPem);
    assert.equal(row(serial), undefined);
    const before = withDb.certificates();
    assert.equal(
      await refusal((await backend(settings(withDb))).revoke!(req)),
      `CA kubernetes (cfssl ${withDb.url}) revoking kubelet-client (serial ${serial}) refused: the CA's certificate database holds no such certificate (authority key id "" nor ${aki}): it was issued by another CA, or before the CA had its database`,
    );
    assert.deepEqual(withDb.certificates(), before, "nothing else was revoked");
  });
});

describe("step-ca", () => {
  let ca: StepCaHandle;
  let root = "";
  before(async () => {
    ca = await startStepCa({ provisioners: [{ name: "workers", organization: ["system:nodes"] }] });
    root = tempRoot("nj-revoke-step-");
    const workers = ca.provisioners[0]!;
    const j = await runCli(
      stepWorkerJoin(root, ca, {
        "node-name": "r1",
        ip: "10.0.0.31",
        "ca-provisioner": "workers",
      }),
      { env: { NODE_JOIN_CA_PASSWORD: workers.password } },
    );
    assert.equal(j.code, 0, j.stderr);
  });
  after(async () => ca?.stop());

  const settings = (): CaSettings => ({
    type: "step-ca",
    urls: [ca.url],
    certHashes: [],
    fingerprint: ca.rootFingerprint,
  });

  test("revoke() over mTLS with the certificate itself; step-ca then refuses to renew or rekey it, and renew says so", async () => {
    const req = request(root, "kubelet-client");
    const { serial } = opensslIds(req.certPem);
    const b = await backend(settings());
    await b.revoke!(req);
    assert.match(
      stepCaLog(ca),
      new RegExp(`path=/1.0/revoke .*serial=${serial}|serial=${serial}.*path=/1.0/revoke`),
    );
    // Again: step-ca answers "already revoked", which is done.
    await b.revoke!(req);

    // /1.0/rekey (renew's default, a fresh key) with the revoked certificate: refused.
    const r = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(
      errorLine(r.stderr),
      `node-join: error: CA kubernetes (step-ca ${ca.url}) rekeying kubelet-client: the CA refused the current certificate (HTTP 401): it may be revoked, issued by another CA, or its provisioner may have renewal disabled\n`,
    );
    assert.match(stepCaLog(ca), /certificate has been revoked/);

    // /1.0/renew (the same key, renew.reuseKey) likewise.
    writeFileSync(
      join(root, "etc/node-join/config.yaml"),
      `${readFileSync(join(root, "etc/node-join/config.yaml"), "utf8")}renew:\n  reuseKey: true\n`,
    );
    const same = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(same.code, 4, same.stderr);
    assert.equal(
      errorLine(same.stderr),
      `node-join: error: CA kubernetes (step-ca ${ca.url}) renewing kubelet-client: the CA refused the current certificate (HTTP 401): it may be revoked, issued by another CA, or its provisioner may have renewal disabled\n`,
    );
  });

  test("a step-ca without a database cannot record a revocation: refused by name, not retried", async () => {
    const config = JSON.parse(readFileSync(ca.configFile, "utf8")) as Record<string, unknown>;
    delete config.db;
    writeFileSync(ca.configFile, JSON.stringify(config));
    await ca.restart();
    const req = request(root, "kubelet-server");
    const { serial } = opensslIds(req.certPem);
    const started = Date.now();
    assert.equal(
      await refusal((await backend(settings())).revoke!(req)),
      `CA kubernetes (step-ca ${ca.url}): cannot revoke kubelet-server (serial ${serial}): the CA has no database to record revocations (ca.json "db"): revoke it there once it has one, or let it expire`,
    );
    assert.ok(Date.now() - started < 5_000, "a 501 is an answer, not an outage to retry");
  });
});
