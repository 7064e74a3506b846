// scripts/deps.sh installs what is asked for and no more: the demo's few packages, or the test
// suite's. Run as a user who is not root on a host that has none of them, it names what is
// missing and stops, so this test installs nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";

/** A PATH with only what deps.sh itself runs, and an `id` that says uid 1000. */
function bareHost(): string {
  const bin = tempRoot("nj-deps-bin-");
  for (const tool of ["dirname", "sort"]) symlinkSync(`/usr/bin/${tool}`, join(bin, tool));
  writeFileSync(join(bin, "id"), "#!/bin/sh\necho 1000\n", { mode: 0o755 });
  return bin;
}

function deps(mode: string | undefined) {
  const r = spawnSync("/bin/bash", [join(REPO, "scripts/deps.sh")], {
    encoding: "utf8",
    env: { PATH: bareHost(), ...(mode ? { NODE_JOIN_DEPS: mode } : {}) },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("NODE_JOIN_DEPS=demo asks for the demo's packages only: no etcd, no kubectl, no promtool", () => {
  assert.deepEqual(deps("demo"), {
    code: 1,
    stdout: "",
    stderr:
      "scripts/deps.sh: missing Debian packages curl golang-cfssl openssl and not root: install them with apt-get\n",
  });
});

test("by default deps.sh asks for everything the tests use", () => {
  const r = deps(undefined);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "scripts/deps.sh: missing Debian packages binutils curl etcd-client etcd-server faketime gcc golang-cfssl groff-base jq kubernetes-client nginx-light openssl python3-minimal sqlite3 swtpm swtpm-tools systemd systemd-container tinyproxy tpm2-tools xz-utils zsh and not root: install them with apt-get\n",
  );
});

test("an unknown NODE_JOIN_DEPS is refused", () => {
  assert.deepEqual(deps("all"), {
    code: 2,
    stdout: "",
    stderr: 'scripts/deps.sh: NODE_JOIN_DEPS must be demo or test (got "all")\n',
  });
});
