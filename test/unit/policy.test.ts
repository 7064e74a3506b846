// The run's policy per operation (agent/engine/policy.ts): what each command may do, by name, from
// what the user asked; the commands build none of it. Pure: settings and a layout, no run.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { toSettings } from "../../agent/config/settings.js";
import { flagValues, mergeValues, type RawValues } from "../../agent/config/sources.js";
import { KUBELET_FILES_KEPT, policyFor } from "../../agent/engine/policy.js";
import { layout } from "../../agent/store/layout.js";
import { tempRoot } from "../helpers/fs.js";

const root = tempRoot("nj-policy-");
after(() => rmSync(root, { recursive: true, force: true }));
const l = layout(root);
const s = toSettings(
  mergeValues(
    flagValues({
      apiServer: "https://10.0.0.1:6443",
      caUrl: "http://ca.invalid:8888",
      caCertHash: [`sha256:${"ab".repeat(32)}`],
      nodeName: "w1",
    }),
  ),
  root,
);
const config = { path: l.configFile, values: new Map() as RawValues };
const asked = { dryRun: false, force: false };
const node = { nodeName: "w1", ips: [], dnsNames: [], sources: [] };

test("only join trusts on first use, joins anew after an interrupted leave, drops the auth key and installs the timer", () => {
  const join = policyFor("join", s, l, { ...asked, config: () => new Map() });
  const renew = policyFor("renew", s, l, asked);
  const add = policyFor("trust-add", s, l, { refresh: true, ca: "kubernetes", certs: [], config });
  for (const [name, p] of [
    ["renew", renew],
    ["trust-add", add],
  ] as const) {
    assert.equal(p.trustOnFirstUse, false, name);
    assert.equal(p.afterLeave, "stop", name);
    assert.equal(p.dropAuthKeys, false, name);
    assert.equal(p.installTimer, false, name);
  }
  assert.equal(join.trustOnFirstUse, true);
  assert.equal(join.afterLeave, "continue");
  assert.equal(join.dropAuthKeys, true);
  assert.equal(join.installTimer, s.timer.enabled);
  assert.equal(s.timer.enabled, true, "the timer is on by default");
  assert.equal(
    policyFor("join", s, l, { ...asked, dryRun: true, config: () => new Map() }).installTimer,
    false,
    "a dry run installs nothing",
  );
});

test("join enrols with its secrets checked up front; renew authenticates with the installed certificate and may keep the key", () => {
  const join = policyFor("join", s, l, { ...asked, force: true, config: () => new Map() });
  assert.deepEqual(
    [join.force, join.requestWith, join.enrolmentSecrets, join.reuseKey, join.deadlineRule],
    [true, "enrolment", "up-front", false, false],
  );
  assert.equal(join.contactAllCas, true);
  const renew = policyFor("renew", s, l, { ...asked, dryRun: true });
  assert.deepEqual(
    [renew.dryRun, renew.requestWith, renew.enrolmentSecrets, renew.reuseKey, renew.deadlineRule],
    [true, "installed", "if-needed", true, true],
  );
  assert.equal(renew.contactAllCas, false);
  assert.equal(renew.refreshCas, "server");
});

test("trust runs as renew (hooks, kept files), never forced nor dry; add never issues, remove only to renew orphans", () => {
  const renew = policyFor("renew", s, l, { dryRun: true, force: true });
  const add = policyFor("trust-add", s, l, { refresh: false, ca: "etcd", certs: [], config });
  const keep = policyFor("trust-remove", s, l, { refresh: false, renewOrphans: false, config });
  const renewing = policyFor("trust-remove", s, l, { refresh: false, renewOrphans: true, config });
  for (const p of [add, keep, renewing]) {
    assert.equal(p.force, false);
    assert.equal(p.dryRun, false);
    assert.deepEqual(p.hooks, renew.hooks);
    assert.equal(p.keepPrevious, KUBELET_FILES_KEPT);
    assert.equal(p.recordRenewal, true);
    assert.deepEqual(
      p.extraFiles?.(node, new Map()).map((f) => f.path),
      [l.configFile],
    );
  }
  assert.deepEqual(
    renew.hooks,
    {
      commands: [],
      note: "not running the default post-renew hooks under --root (set hooks.postRenew to run some)",
    },
    "under --root the host's kubelet is never restarted",
  );
  assert.deepEqual([add.issue, add.refreshCas], [false, "local"]);
  assert.deepEqual([...(add.extraCas?.keys() ?? [])], ["etcd"]);
  assert.deepEqual([keep.issue, keep.refreshCas], [false, "local"]);
  assert.deepEqual(
    [renewing.issue, renewing.refreshCas],
    [true, "server"],
    "renewing against the new signer needs the server, --no-refresh or not",
  );
  assert.equal(
    policyFor("trust-add", s, l, { refresh: true, ca: "etcd", certs: [], config }).refreshCas,
    "server",
  );
});
