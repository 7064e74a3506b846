// join --dry-run as a user who cannot write where join would: it fails as the real join would
// (exit 6 naming the directory, "run as root, or use --root"), not "would create …" and exit 0.
// The CLI runs from source as an unprivileged user: nobody (setpriv, util-linux) when the suite
// runs as root, else the user running it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chownSync } from "node:fs";
import { join } from "node:path";
import { checkWritable, firstUnwritable, nearestExisting } from "../../agent/store/writable.js";
import { REPO, spawnCollect } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";

const NOBODY = 65534;
const asRoot = process.geteuid?.() === 0;

function unprivileged(args: string[]): ReturnType<typeof spawnCollect> {
  const node = [process.execPath, "--import", "tsx", join(REPO, "agent/cli/main.ts"), ...args];
  const [cmd, ...rest] = asRoot
    ? ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", ...node]
    : node;
  return spawnCollect(cmd!, rest, { env: { PATH: process.env.PATH, HOME: "/tmp" } });
}

const JOIN = [
  "join",
  "--dry-run",
  "--api-server",
  "https://10.0.0.1:6443",
  "--ca-url",
  "http://127.0.0.1:1",
  "--node-name",
  "w1",
  "--ca-cert-hash",
  `sha256:${"ab".repeat(32)}`,
  "--timeout",
  "1s",
];

test("join --dry-run on the real root as a non-root user: exit 6 naming the directory, before any CA", async () => {
  const r = await unprivileged(JOIN);
  assert.equal(r.stdout, "");
  assert.equal(r.code, 6, r.stderr);
  assert.match(
    r.stderr,
    /^node-join: error: cannot write \/etc\/kubernetes( \(\/etc does not let this user create it\))?: run as root, or use --root\n$/,
  );
});

test("join --dry-run --root the user owns passes the pre-flight (it goes on to the CA)", async () => {
  const root = tempRoot("nj-dry-writable-");
  if (asRoot) chownSync(root, NOBODY, NOBODY);
  const r = await unprivileged([...JOIN, "--root", root]);
  // The CA at port 1 does not answer: exit 3, not the pre-flight's 6.
  assert.equal(r.code, 3, r.stderr);
  assert.doesNotMatch(r.stderr, /cannot write/);
});

test("the pre-flight: the nearest existing parent of a missing directory decides", () => {
  const existing = new Set(["/", "/r", "/r/etc", "/r/var"]);
  const writable = new Set(["/r/var"]);
  const fs = { exists: (p: string) => existing.has(p), writable: (p: string) => writable.has(p) };
  assert.equal(nearestExisting("/r/etc/kubernetes/pki", fs), "/r/etc");
  assert.equal(firstUnwritable(["/r/var/lib/node-join"], fs), undefined);
  assert.deepEqual(firstUnwritable(["/r/var/lib/x", "/r/etc/kubernetes"], fs), {
    dir: "/r/etc/kubernetes",
    at: "/r/etc",
  });
  assert.throws(
    () => checkWritable(["/r/etc"], fs),
    (e: Error & { exitCode?: number; errno?: string }) =>
      e.message === "cannot write /r/etc" && e.exitCode === 6 && e.errno === "EACCES",
  );
});
