// A CA rotation against a real step-ca, through the README's three phases. 1: a second root in
// the CA's config (ca.json "root": [old, new]) is served by GET /roots, which node-join fetches
// over TLS that the pinned root authenticates (as `step ca roots` does): it is only offered (a
// warning, `trust list`), never installed, until `trust add --ca-cert-hash` pins it (the join's
// --ca-fingerprint becomes a pin); retiring the old root before that is refused. 2: the CA
// signs with a new intermediate under the new root; with renew.onSignerChange early the leaves of
// the old intermediate are renewed early, and verify against the bundle. 3: the CA drops the old
// root, and so does the node.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { opensslPin } from "../helpers/cfssl.js";
import { json, runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import { certsOf, issuerOf } from "../helpers/rotation.js";
import {
  makeStepCaCert,
  reconfigureStepCa,
  startStepCa,
  stepWorkerJoin,
  type StepCaHandle,
} from "../helpers/stepca.js";
import { assertKubeletRenewed } from "../helpers/expect.js";

let ca: StepCaHandle;
before(async () => {
  ca = await startStepCa();
});
after(async () => ca?.stop());

interface RenewJson {
  changedFiles: string[];
  renewed: { kind: string; reason: string }[];
}

test("step-ca rotation: a new root served over the pinned root's TLS is offered until pinned, then joins the bundle, the signer switches to a new intermediate (early renewals), the old root retires", async () => {
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
  const cfg = join(root, "etc/node-join/config.yaml");
  assert.equal(certsOf(readFileSync(caCrt, "utf8")).length, 1);
  const leaf = (kind: string) =>
    readFileSync(join(root, `var/lib/kubelet/pki/kubelet-${kind}-current.pem`), "utf8");
  const verifiesAll = (phase: string) => {
    for (const kind of ["client", "server"])
      assert.ok(opensslVerifies(leaf(kind), caCrt), `${phase}: openssl verify kubelet-${kind}`);
  };
  const oldPin = opensslPin(ca.rootFile);

  // Phase 1: the operator adds a new root beside the old one and restarts the CA. The node is
  // offered it and trusts it only once given its pin.
  const newRoot = makeStepCaCert(ca, "new-root", "Smallstep Root CA 2");
  const newPin = opensslPin(newRoot.cert);
  await reconfigureStepCa(ca, [ca.rootFile, newRoot.cert]);
  const r = await runCli(["renew", "--root", root, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  // Only the state file, which records what was offered for `trust list`.
  assert.deepEqual(
    json<RenewJson>(r).changedFiles,
    [join(root, "var/lib/node-join/state.json")],
    "an offered root is not installed",
  );
  assert.match(
    r.stderr,
    new RegExp(`offers CA certificate "CN=Smallstep Root CA 2" \\(${newPin}\\) that no anchor`),
  );
  assert.equal(certsOf(readFileSync(caCrt, "utf8")).length, 1);
  const list = await runCli(["trust", "list", "--root", root]);
  assert.match(list.stdout, new RegExp(`\n  ${newPin} \\(offered\\)\n`));
  // Retiring the old root before the new one is trusted would leave nothing.
  const remove = () =>
    runCli(["trust", "remove", "--root", root, "--ca", "kubernetes", "--ca-cert-hash", oldPin]);
  const early = await remove();
  assert.equal(early.code, 2);
  assert.equal(
    early.stderr,
    `node-join: error: CA kubernetes: removing ${oldPin} would leave no trusted certificate in ca.crt: trust the new CA first (node-join trust add), and run node-join renew until its certificate is in the bundle\n`,
  );
  const add = await runCli([
    ...["trust", "add", "--root", root, "--ca", "kubernetes", "--ca-cert-hash", newPin],
  ]);
  assert.equal(add.code, 0, add.stderr);
  assert.equal(
    add.stdout.split("\n")[0],
    `CA kubernetes: trusting ${newPin}; its bundle holds 2 certificate(s)`,
  );
  const bundle = certsOf(readFileSync(caCrt, "utf8"));
  assert.deepEqual(
    bundle.map((c) => opensslInfo(c).cn),
    [opensslInfo(ca.rootPem).cn, "Smallstep Root CA 2"],
  );
  assert.equal(bundle[1], readFileSync(newRoot.cert, "utf8"));
  verifiesAll("phase 1");
  const again = await runCli(["renew", "--root", root, "--json"]);
  assert.deepEqual(json<RenewJson>(again).changedFiles, []);
  assert.doesNotMatch(again.stderr, /offers/);
  const config = readFileSync(cfg, "utf8");
  assert.doesNotMatch(config, /fingerprint/);
  assert.match(config, new RegExp(`certHashes:\\n\\s+- ${oldPin}\\n\\s+- ${newPin}\\n`));

  // Phase 2: the CA signs with a new intermediate under the new root; the node renews the old
  // intermediate's certificates early (within a short window here).
  writeFileSync(
    cfg,
    `${readFileSync(cfg, "utf8")}renew:\n  onSignerChange: early\n  signerChangeWindow: 1s\n`,
  );
  const signer = makeStepCaCert(ca, "new-intermediate", "Smallstep Intermediate CA 2", newRoot);
  await reconfigureStepCa(ca, [ca.rootFile, newRoot.cert], signer);
  const renewed: RenewJson["renewed"] = [];
  for (const wait of [0, 1500]) {
    await new Promise((res) => setTimeout(res, wait));
    const run = await runCli(["renew", "--root", root, "--json"]);
    assert.equal(run.code, 0, run.stderr);
    renewed.push(...json<RenewJson>(run).renewed);
  }
  assertKubeletRenewed(
    renewed,
    /^signed by a retiring CA: the CA signs with "Smallstep Intermediate CA 2" since /,
  );
  for (const kind of ["client", "server"])
    assert.equal(issuerOf(leaf(kind)), "CN = Smallstep Intermediate CA 2");
  verifiesAll("phase 2");

  // Phase 3: the CA drops the old root; then the node.
  await reconfigureStepCa(ca, [newRoot.cert], signer);
  const retired = await remove();
  assert.equal(retired.code, 0, retired.stderr);
  assert.equal(
    retired.stdout.split("\n")[0],
    `CA kubernetes: no longer trusting ${oldPin}; its bundle holds 1 certificate(s)`,
  );
  assert.deepEqual(certsOf(readFileSync(caCrt, "utf8")), [readFileSync(newRoot.cert, "utf8")]);
  verifiesAll("phase 3");
  const forced = await runCli(["renew", "--root", root, "--force", "--json"]);
  assert.equal(forced.code, 0, forced.stderr);
  verifiesAll("phase 3, renewed");
  const last = await runCli(["renew", "--root", root, "--json"]);
  assert.deepEqual(json<RenewJson>(last).changedFiles, []);
});
