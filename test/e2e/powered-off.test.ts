// A CFSSL node switched off until every certificate expired, with renew.authKey: drop: renew
// cannot sign and says, in one line, to put the key back or re-enrol; join with the key re-enrols.
// The other paths of docs/clock.md "Powered off past expiry" are tested where their backend is
// (renew.test.ts, stepca-renew.test.ts, stepca-backend.test.ts, stepca-x5c.test.ts).
//
// A real CFSSL issues the first certificates from a profile valid for about a minute (CFSSL
// backdates NotBefore by 5 minutes: expiry 6m ends a minute or so after issue); the node then
// runs in process with its clock 4 minutes ahead (past every notAfter, within the 5 minutes by
// which the CA's Date header may differ from the node's clock), so nothing waits.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { systemClock } from "../../agent/common/clock.js";
import { DEFAULT_PROFILES, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { tempRoot } from "../helpers/fs.js";
import { cli, kubeletLeaf } from "../helpers/joined.js";

let ca: CfsslCa;
before(async () => {
  ca = await startCfssl({ profiles: { ...DEFAULT_PROFILES, brief: { expiry: "6m" } } });
});
after(async () => {
  await ca?.stop();
});

const AHEAD_MS = 4 * 60_000;
/** The node's clock once it is switched on again: later than every certificate it holds. */
const later = { clock: { ...systemClock, now: () => Date.now() + AHEAD_MS } };

test("CFSSL with renew.authKey: drop, every certificate expired: renew says put the key back or re-enrol, and changes nothing; join with the key re-enrols", async () => {
  const root = tempRoot("nj-off-drop-");
  const keyFile = ca.installAuthKey(root);
  const flags = {
    "ca-auth-key-file": keyFile,
    "auth-key-after-join": "drop",
    "client-profile": "brief",
    "serving-profile": "brief",
  };
  const j = await cli([...cfsslWorkerJoin(root, ca, flags), "--no-timer"]);
  assert.equal(j.code, 0, j.stderr);
  const first = kubeletLeaf(root, "kubelet-client");
  assert.ok(first.notAfter.getTime() < Date.now() + AHEAD_MS, "expired by the node's clock");
  // The profiles the node renews with from now on are valid for longer than the clock is ahead.
  const cfg = join(root, "etc/node-join/config.yaml");
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace(/Profile: brief/g, "Profile: short"));

  const st = await cli(["status", "--root", root], later);
  assert.equal(st.code, 8, st.stdout);
  assert.match(st.stdout, /kubelet-client\s.*expired/);

  const signed = ca.signRequests();
  const r = await cli(["renew", "--root", root], later);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    `node-join: error: CA kubernetes (cfssl ${ca.url}): the auth key was dropped after join (renew.authKey: drop); put it back at /etc/node-join/ca-auth.key (--ca-auth-key-file, config cas.kubernetes.authKeyFile) or re-enrol with node-join join\n`,
  );
  assert.equal(ca.signRequests(), signed, "no CSR reached the CA");
  assert.equal(kubeletLeaf(root, "kubelet-client").serial, first.serial, "nothing replaced");

  // Re-enrol: the key given back for this one join, dropped again after it.
  const key = ca.installAuthKey(root);
  const again = await cli(
    [
      ...cfsslWorkerJoin(root, ca, {
        ...flags,
        "ca-auth-key-file": key,
        "client-profile": "short",
        "serving-profile": "short",
      }),
      "--no-timer",
    ],
    later,
  );
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /^joined worker node w1: issued 2 certificate\(s\)/);
  const renewed = kubeletLeaf(root, "kubelet-client");
  assert.notEqual(renewed.serial, first.serial);
  assert.ok(renewed.notAfter.getTime() > Date.now() + AHEAD_MS);
  assert.equal((await cli(["status", "--root", root], later)).code, 0);
});
