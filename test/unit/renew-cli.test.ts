// `node-join renew` as a user runs it, in process (main() against fake CAs on a fake clock): the
// next-renewal line names its certificate, --before explains itself in the flag's own terms, and
// --timeout is taken like join's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { renewalDeadline } from "../../agent/pki/deadline.js";
import { DAY, iso, joined, kubeletLeaf } from "../helpers/joined.js";

test("renew: nothing due names the certificate that falls due next, in the one date format", async () => {
  const n = await joined();
  const r = await n.run("renew");
  assert.equal(r.code, 0, r.stderr);
  const next = ["kubelet-client", "kubelet-server"]
    .map((kind) => ({ kind, at: renewalDeadline(kubeletLeaf(n.root, kind), { nodeName: "w1" }) }))
    .sort((a, b) => a.at.getTime() - b.at.getTime())[0]!;
  assert.equal(r.stdout, `nothing to renew; next renewal: ${next.kind} at ${iso(next.at)}\n`);
  const j = JSON.parse((await n.run("renew", "--json")).stdout) as Record<string, unknown>;
  assert.equal(j.nextDeadline, iso(next.at));
  assert.equal(j.nextDeadlineKind, next.kind);
});

test("renew --before explains itself in terms of the flag given, also when longer than the lifetime", async () => {
  const n = await joined("worker", 30 * DAY);
  const dry = await n.run("renew", "--before", "400d", "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  // The files it would write follow (test/e2e/preflight.test.ts checks them).
  assert.equal(
    dry.stdout.split("\n").slice(0, 3).join("\n") + "\n",
    [
      "dry run: would renew kubelet-client, kubelet-server",
      "  would renew kubelet-client: --before 400d is at least its whole lifetime (30d): due on every run",
      "  would renew kubelet-server: --before 400d is at least its whole lifetime (30d): due on every run",
      "",
    ].join("\n"),
  );
  n.clock.advance(2 * DAY);
  const r = await n.run("renew", "--before", "29d", "--json");
  assert.equal(r.code, 0, r.stderr);
  const renewed = (JSON.parse(r.stdout) as { renewed: { reason: string; notAfter: string }[] })
    .renewed;
  assert.equal(renewed.length, 2);
  for (const x of renewed) {
    assert.match(
      x.reason,
      /^less than --before 29d remains \(since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/,
    );
    assert.match(x.notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  }
});

test("renew --timeout takes a duration like join's; a bad one is exit 2 naming the flag", async () => {
  const n = await joined();
  const ok = await n.run("renew", "--timeout", "30s");
  assert.equal(ok.code, 0, ok.stderr);
  const bad = await n.run("renew", "--timeout", "soon");
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr,
    'node-join: error: --timeout: must be a duration such as 90s, 5m or 2h (got "soon")\n',
  );
});
