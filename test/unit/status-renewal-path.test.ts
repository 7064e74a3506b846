// `node-join status` names how renew will authenticate to each CA of the role (--wide and --json):
// CFSSL with its auth key file, without one (an unauthenticated profile), or with the key dropped
// after join (renew.authKey: drop); step-ca by cas.<ca>.renewAuth (auto: mTLS, else a token; mtls;
// token).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { joined } from "../helpers/joined.js";

interface Paths {
  renewalPaths?: { ca: string; type: string; path: string }[];
}

/** The lines of `status --wide` from "renewal paths:" to the timer's line, and --json's paths. */
async function shown(n: Awaited<ReturnType<typeof joined>>) {
  const wide = await n.run("status", "--wide");
  assert.equal(wide.code, 0, wide.stderr);
  const lines = wide.stdout.split("\n");
  const at = lines.indexOf("renewal paths:");
  const end = lines.findIndex((l) => l.startsWith("renewal timer:"));
  const j = JSON.parse((await n.run("status", "--json")).stdout) as Paths;
  return { text: lines.slice(at, end + 1), json: j.renewalPaths };
}

test("status: a worker joined without an auth key renews through an unauthenticated profile; the narrow form leaves it out", async () => {
  const n = await joined();
  const narrow = await n.run("status");
  assert.equal(narrow.code, 0, narrow.stderr);
  assert.doesNotMatch(narrow.stdout, /renewal paths/);
  const { text, json } = await shown(n);
  assert.deepEqual(text, [
    "renewal paths:",
    "  kubernetes CA (cfssl): no auth (unauthenticated profile)",
    "identity: none (a copy of the disk carries 0 secret files)",
    "renewal timer: none",
  ]);
  assert.deepEqual(json, [
    { ca: "kubernetes", type: "cfssl", path: "no auth (unauthenticated profile)" },
  ]);
});

test("status: a control plane shows each CA's path: step-ca mTLS, a CFSSL auth key on disk, one dropped after join", async () => {
  const n = await joined("control-plane");
  const file = join(n.root, "etc/node-join/config.yaml");
  const config = readFileSync(file, "utf8")
    .replace(
      "  kubernetes:\n    url: http://ca.invalid:8888\n",
      "  kubernetes:\n    type: step-ca\n    url: https://ca.invalid:9000\n",
    )
    .replace(
      "  frontProxy:\n",
      "  frontProxy:\n    type: cfssl\n    url: http://fp.invalid:8888\n    authKeyFile: /etc/node-join/front-proxy-ca.key\n",
    )
    .replace(
      "  etcd:\n",
      "  etcd:\n    type: cfssl\n    url: http://etcd.invalid:8888\n    authKeyFile: /etc/node-join/etcd-ca.key\n",
    )
    .concat("renew:\n  authKey: drop\n");
  writeFileSync(file, config);
  // The etcd CA's key is back on disk; the front-proxy CA's was dropped.
  writeFileSync(join(n.root, "etc/node-join/etcd-ca.key"), "00ff\n", { mode: 0o600 });

  const { text, json } = await shown(n);
  assert.deepEqual(text, [
    "renewal paths:",
    "  kubernetes CA (step-ca): mTLS with the current certificate, else a token signed by its key",
    "  front-proxy CA (cfssl): auth key dropped: re-enrol",
    "  etcd CA (cfssl): auth key /etc/node-join/etcd-ca.key",
    "identity: file (a copy of the disk carries 1 secret file: /etc/node-join/etcd-ca.key)",
    "renewal timer: none",
  ]);
  assert.deepEqual(json, [
    {
      ca: "kubernetes",
      type: "step-ca",
      path: "mTLS with the current certificate, else a token signed by its key",
    },
    { ca: "front-proxy", type: "cfssl", path: "auth key dropped: re-enrol" },
    { ca: "etcd", type: "cfssl", path: "auth key /etc/node-join/etcd-ca.key" },
  ]);

  // cas.kubernetes.renewAuth names the step-ca path.
  for (const [mode, path] of [
    ["mtls", "mTLS with the current certificate"],
    ["token", "a token signed by the current key (key kept)"],
  ]) {
    writeFileSync(
      file,
      config.replace("    type: step-ca\n", `    type: step-ca\n    renewAuth: ${mode}\n`),
    );
    const p = JSON.parse((await n.run("status", "--json")).stdout) as Paths;
    assert.equal(p.renewalPaths![0]!.path, path, mode!);
  }

  // Without renew.authKey: drop, a missing key file is not "dropped": it is missing.
  writeFileSync(file, config.replace("renew:\n  authKey: drop\n", ""));
  const keep = JSON.parse((await n.run("status", "--json")).stdout) as Paths;
  assert.equal(keep.renewalPaths![1]!.path, "auth key /etc/node-join/front-proxy-ca.key (missing)");
});
