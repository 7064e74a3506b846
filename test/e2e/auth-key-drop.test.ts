// renew.authKey: drop against a real CFSSL through the bundle: join deletes the auth key file once
// it succeeded, renew with nothing due still reaches the CA for its bundle and exits 0, renew that
// must sign stops before any sign request with exit 2, and signs again once the key is back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { useCfssl } from "../helpers/cfssl.js";
import { runCli } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { tempRoot } from "../helpers/fs.js";

const ca = useCfssl();

test("join --auth-key-after-join drop, then renew: nothing due is fine, a signing renew needs the key back", async () => {
  const root = tempRoot("nj-drop-");
  const keyFile = ca.installAuthKey(root);
  const j = await runCli(
    cfsslWorkerJoin(root, ca, { "ca-auth-key-file": keyFile, "auth-key-after-join": "drop" }),
  );
  assert.equal(j.code, 0, j.stderr);
  assert.equal(
    j.stdout.split("\n").at(-2),
    `dropped the CFSSL auth key file ${keyFile} (renew.authKey: drop): a renewal that must sign needs it back, or a new join`,
  );
  assert.equal(existsSync(keyFile), false);
  assert.match(readFileSync(join(root, "etc/node-join/config.yaml"), "utf8"), /authKey: drop/);

  const signed = ca.signRequests();
  const idle = await runCli(["renew", "--root", root]);
  assert.equal(idle.code, 0, idle.stderr);
  assert.match(idle.stdout, /^nothing to renew; next renewal: /);

  const message = `CA kubernetes (cfssl ${ca.url}): the auth key was dropped after join (renew.authKey: drop); put it back at /etc/node-join/ca-auth.key (--ca-auth-key-file, config cas.kubernetes.authKeyFile) or re-enrol with node-join join`;
  const esc = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const forced = await expectFailure(
    ["renew", "--root", root, "--force"],
    2,
    new RegExp(esc(message)),
    root,
  );
  assert.equal(forced.stderr, `node-join: error: ${message}\n`);
  assert.equal(ca.signRequests(), signed, "no CSR reached the CA");

  // join again (a provisioning hook that runs at every boot): nothing due is fine; forced to sign,
  // the same message, before any CSR is sent, and nothing written
  const joinArgs = cfsslWorkerJoin(root, ca, {
    "ca-auth-key-file": keyFile,
    "auth-key-after-join": "drop",
  });
  const again = await runCli(joinArgs);
  assert.equal(again.code, 0, again.stderr);
  const joinMessage = message.replace("/etc/node-join/ca-auth.key", keyFile);
  const rejoin = await expectFailure(
    [...joinArgs, "--force"],
    2,
    new RegExp(esc(joinMessage)),
    root,
  );
  // after join's progress lines ("requesting kubelet-client ..."), the one error line
  assert.equal(rejoin.stderr.trim().split("\n").at(-1), `node-join: error: ${joinMessage}`);
  assert.equal(ca.signRequests(), signed, "no CSR reached the CA");

  ca.installAuthKey(root);
  const back = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(ca.signRequests(), signed + 2);
});
