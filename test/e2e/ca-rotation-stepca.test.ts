// A CA rotation's first phase against a real step-ca: a second root listed in the CA's config
// (ca.json "root": [old, new]) is served by GET /roots, which node-join fetches over TLS that the
// pinned root authenticates (as `step ca roots` does), so it joins ca.crt on the next renew.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { json, runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import { startStepCa, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";

let ca: StepCaHandle;
before(async () => {
  ca = await startStepCa();
});
after(async () => ca?.stop());

const certsOf = (pem: string): string[] =>
  pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n/g) ?? [];

test("step-ca: a new root the CA serves over the pinned root's TLS joins the bundle; the old leaves still verify", async () => {
  const root = tempRoot("nj-step-rotation-");
  const tokens = [
    await ca.mintToken("workers", "system:node:r1", ["r1", "10.0.0.31"]),
    await ca.mintToken("workers", "system:node:r1", []),
  ];
  const j = await runCli(stepWorkerJoin(root, ca, { "node-name": "r1", ip: "10.0.0.31" }), {
    env: { NODE_JOIN_CA_TOKEN: tokens.join("\n") },
  });
  assert.equal(j.code, 0, j.stderr);
  const caCrt = join(root, "etc/kubernetes/pki/ca.crt");
  assert.equal(certsOf(readFileSync(caCrt, "utf8")).length, 1);

  // The operator adds a new root beside the old one and restarts the CA.
  const newRoot = join(ca.dir, "new-root.crt");
  execFileSync("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", join(ca.dir, "new-root.key"), "-out", newRoot, "-days", "3650"],
    ...["-subj", "/CN=Smallstep Root CA 2", "-addext", "basicConstraints=critical,CA:TRUE"],
    ...["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
  ]);
  const config = JSON.parse(readFileSync(ca.configFile, "utf8")) as { root: string | string[] };
  config.root = [ca.rootFile, newRoot];
  writeFileSync(ca.configFile, JSON.stringify(config, null, 2));
  await ca.restart();

  const r = await runCli(["renew", "--root", root, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(json<{ changedFiles: string[] }>(r).changedFiles.includes(caCrt), r.stdout);
  const bundle = certsOf(readFileSync(caCrt, "utf8"));
  assert.deepEqual(
    bundle.map((c) => opensslInfo(c).cn),
    [opensslInfo(ca.rootPem).cn, "Smallstep Root CA 2"],
  );
  assert.equal(bundle[1], readFileSync(newRoot, "utf8"));
  const leaf = readFileSync(join(root, "var/lib/kubelet/pki/kubelet-client-current.pem"), "utf8");
  assert.ok(opensslVerifies(certsOf(leaf).join(""), caCrt), "the installed leaf still verifies");
  const again = await runCli(["renew", "--root", root, "--json"]);
  assert.deepEqual(json<{ changedFiles: string[] }>(again).changedFiles, []);
});
