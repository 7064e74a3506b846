// --unsafe-skip-ca-verification is trust on first use: join trusts the CA that answers, pins it in
// the config, and never persists the flag; every later run verifies against the pin, so an
// impostor answering at the CA's address later is refused. Real CFSSL and step-ca.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { json, runCli } from "../helpers/cli.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { startStepCa, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";

let ca: CfsslCa;
let impostor: CfsslCa;
let step: StepCaHandle;
let stepImpostor: StepCaHandle;
before(async () => {
  [ca, impostor] = await Promise.all([startCfssl(), startCfssl({ cn: "impostor" })]);
  [step, stepImpostor] = await Promise.all([
    startStepCa({ provisioners: [{ name: "workers", organization: ["system:nodes"] }] }),
    startStepCa({ provisioners: [{ name: "workers", organization: ["system:nodes"] }] }),
  ]);
});
after(async () => {
  await Promise.all([ca?.stop(), impostor?.stop(), step?.stop(), stepImpostor?.stop()]);
});

type Config = {
  unsafeSkipCaVerification?: unknown;
  cas: { kubernetes: { url: string; certHashes?: string[] } };
};
const configOf = (root: string) =>
  YAML.parse(readFileSync(join(root, "etc/node-join/config.yaml"), "utf8")) as Config;

/** Another CA now answers at the CA's address (DNS, an address taken over): the config says so. */
function redirect(root: string, url: string): void {
  const file = join(root, "etc/node-join/config.yaml");
  writeFileSync(file, readFileSync(file, "utf8").replace(/url: \S+/, `url: ${url}`));
}

test("CFSSL: join --unsafe-skip-ca-verification pins the CA it trusted; renew refuses an impostor (exit 5) and changes nothing", async () => {
  const root = tempRoot("nj-tofu-");
  const keyFile = ca.installAuthKey(root);
  const j = await runCli(
    cfsslWorkerJoin(root, ca, {
      "ca-cert-hash": undefined,
      "ca-auth-key-file": keyFile,
      "unsafe-skip-ca-verification": true,
    }),
  );
  assert.equal(j.code, 0, j.stderr);
  assert.match(
    j.stderr,
    /WARNING: CA kubernetes \(cfssl .*\): trusting its CA certificate without verification/,
  );
  assert.ok(
    j.stderr.includes(
      `pinned CA kubernetes (${ca.pin}): later runs trust only this CA certificate`,
    ),
    j.stderr,
  );
  const cfg = configOf(root);
  assert.deepEqual(cfg.cas.kubernetes.certHashes, [ca.pin], "the trusted CA is pinned");
  assert.equal(cfg.unsafeSkipCaVerification, undefined, "the flag is never persisted");

  const good = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(good.code, 0, `the pinned CA still renews: ${good.stderr}`);

  redirect(root, impostor.url);
  const before = snapshot(root);
  for (const env of [{}, { NODE_JOIN_UNSAFE_SKIP_CA_VERIFICATION: "1" }]) {
    const r = await runCli(["renew", "--root", root, "--force", "--json"], { env });
    assert.equal(r.code, 5, r.stderr);
    assert.match(
      json<{ error: string }>(r).error,
      /CA kubernetes \(cfssl http:\/\/127\.0\.0\.1:\d+.*\): CA certificate pin sha256:[0-9a-f]{64} matches no --ca-cert-hash \(config key cas\.kubernetes\.certHashes\); refusing to trust it/,
    );
    assert.equal(impostor.signRequests(), 0, "nothing is sent to the impostor");
  }
  assert.deepEqual(
    diffSnapshots(before, snapshot(root)),
    [],
    "ca.crt and every certificate unchanged",
  );
});

test("an old config that still holds unsafeSkipCaVerification is refused with the fix (exit 2)", async () => {
  const root = tempRoot("nj-tofu-old-");
  const keyFile = ca.installAuthKey(root);
  assert.equal((await runCli(cfsslWorkerJoin(root, ca, { "ca-auth-key-file": keyFile }))).code, 0);
  const file = join(root, "etc/node-join/config.yaml");
  writeFileSync(file, `${readFileSync(file, "utf8")}unsafeSkipCaVerification: true\n`);
  const before = snapshot(root);
  const r = await runCli(["renew", "--root", root]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /^node-join: error: config .*config\.yaml: config key unsafeSkipCaVerification: is not read from the config file: a renewal must never trust whatever CA answers; join pins the CA it trusted \(cas\.<ca>\.certHashes\): remove the key, or join again\n$/,
  );
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});

test("step-ca: join --unsafe-skip-ca-verification without a fingerprint pins the root; renew refuses another step-ca (exit 5)", async () => {
  const root = tempRoot("nj-tofu-step-");
  const workers = step.provisioners.find((p) => p.name === "workers")!;
  const j = await runCli(
    stepWorkerJoin(root, step, {
      "ca-fingerprint": undefined,
      "ca-provisioner": "workers",
      "ca-password-file": workers.passwordFile,
      "unsafe-skip-ca-verification": true,
    }),
  );
  assert.equal(j.code, 0, j.stderr);
  const pins = configOf(root).cas.kubernetes.certHashes;
  assert.equal(pins?.length, 1, JSON.stringify(pins));
  assert.match(j.stderr, new RegExp(`pinned CA kubernetes \\(${pins![0]}\\)`));
  // The pin is the root's: renewal over mTLS with the installed certificate works against it.
  const good = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(good.code, 0, good.stderr);

  redirect(root, stepImpostor.url);
  const before = snapshot(root);
  const r = await runCli(["renew", "--root", root, "--force", "--json"]);
  assert.equal(r.code, 5, r.stderr);
  assert.match(
    json<{ error: string }>(r).error,
    /CA kubernetes \(step-ca https:\/\/127\.0\.0\.1:\d+\): CA certificate pin .* matches no --ca-cert-hash/,
  );
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});
