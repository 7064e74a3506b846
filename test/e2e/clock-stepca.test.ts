// Boards without a clock (issue 22, items 1-4) against a real step-ca, the host's clock moved with
// libfaketime (helpers/faketime.ts). step-ca serves TLS with a certificate of a day's lifetime: a
// clock days off fails the TLS check before any Date could be trusted, and the server's Date,
// read without trusting it, names the clock instead of the CA.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "../helpers/cli.js";
import { atClock, expectClockNotSetOnJoined, needFaketime } from "../helpers/faketime.js";
import { diffSnapshots, snapshot, tempRoot } from "../helpers/fs.js";
import { startStepCa, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";

needFaketime();

let ca: StepCaHandle;
before(async () => {
  ca = await startStepCa({ provisioners: [{ name: "workers", organization: ["system:nodes"] }] });
});
after(async () => {
  await ca?.stop();
});

const joinArgs = (root: string, extra: string[] = []) => [
  ...stepWorkerJoin(root, ca),
  ...["--ca-provisioner", "workers"],
  ...extra,
];
const secret = () => ({
  NODE_JOIN_CA_PASSWORD: ca.provisioners.find((p) => p.name === "workers")!.password,
});

test("step-ca: join at 1970 and 3 days ahead exit 11 naming the clock, nothing written", async () => {
  const root = tempRoot();
  const before = snapshot(root);
  const old = await atClock("@1970-01-02 00:00:00", joinArgs(root, ["--timeout", "6s"]), secret());
  assert.equal(old.code, 11, old.stderr);
  assert.match(
    old.stderr,
    /the host's clock reads 1970-01-02\S+, before \S+ \(node-join's build time\)/,
  );
  const ahead = await atClock("+3d", joinArgs(root, ["--timeout", "6s"]), secret());
  assert.equal(ahead.code, 11, ahead.stderr);
  assert.match(
    ahead.stderr,
    /waiting up to 6s .*the host's clock reads \S+, [23]d ahead of CA kubernetes \(step-ca \S+\) \(its Date: \S+\), over clock\.tolerance 5m/,
  );
  assert.doesNotMatch(ahead.stderr, /does not verify|error: .*TLS/);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});

test("step-ca: on a joined node, status and renew at 1970 and renew 20 years ahead exit 11, nothing replaced", async () => {
  const root = tempRoot();
  const joined = await runCli(joinArgs(root, ["--no-timer"]), { env: secret() });
  assert.equal(joined.code, 0, joined.stderr);
  const before = snapshot(root);
  await expectClockNotSetOnJoined(root, "step-ca");
  assert.deepEqual(diffSnapshots(before, snapshot(root)), []);
});
