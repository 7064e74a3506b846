// promtool (Debian's prometheus package, unpacked by scripts/deps.sh) on the metrics textfiles
// whose
// content test/unit/renewal.test.ts checks: node_exporter drops a whole textfile that does not
// parse, so a file promtool rejects or lints would silently lose every node-join metric. And the
// textfile as node_exporter's user may leave it (the collector directory is often theirs): a FIFO,
// a link to /dev/zero or a directory there is a warning, never a stuck or failed renew or status.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { useCfssl } from "../helpers/cfssl.js";
import { runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { sampleTextfiles } from "../helpers/metrics-samples.js";
import { checkMetrics } from "../helpers/promtool.js";

const ca = useCfssl();

test("the metrics textfile passes promtool check metrics without lint warnings", () => {
  const { first, second } = sampleTextfiles();
  for (const text of [first, second]) {
    const r = checkMetrics(text);
    assert.equal(r.code, 0, r.output + text);
    assert.equal(r.output.trim(), "", "no lint warnings");
  }
});

test("promtool rejects a broken textfile (the check above can fail)", () => {
  assert.notEqual(checkMetrics("node_join_x{bad label} 1\n").code, 0);
});

const TEXTFILE = "var/lib/node_exporter/textfile_collector/node_join.prom";

/** A joined worker whose collector directory holds `plant` at the textfile's path. */
async function plantedRoot(plant: (path: string) => void): Promise<{ root: string; file: string }> {
  const root = tempRoot("nj-metrics-");
  mkdirSync(join(root, "var/lib/node_exporter/textfile_collector"), { recursive: true });
  const keyFile = ca.installAuthKey(root);
  const j = await runCli(cfsslWorkerJoin(root, ca, { "ca-auth-key-file": keyFile }));
  assert.equal(j.code, 0, j.stderr);
  const file = join(root, TEXTFILE);
  rmSync(file, { force: true });
  plant(file);
  return { root, file };
}

for (const [what, plant] of [
  ["a FIFO", (p: string) => assert.equal(spawnSync("mkfifo", [p]).status, 0)],
  ["a link to /dev/zero", (p: string) => symlinkSync("/dev/zero", p)],
] as const) {
  test(`renew and status finish with a warning when the textfile is ${what}, and leave a regular textfile`, async () => {
    for (const command of ["renew", "status"]) {
      const { root, file } = await plantedRoot(plant);
      // without the fix, open(2) on the FIFO waits for a writer forever, and /dev/zero never ends
      const r = await runCli([command, "--root", root], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `${command}: exit ${r.code}\n${r.stderr}`);
      assert.match(
        r.stderr,
        /warning: metrics textfile: not reading .*node_join\.prom: it is (a FIFO, not a regular file|a symbolic link); writing a fresh one/,
      );
      assert.ok(lstatSync(file).isFile(), "replaced by a regular file");
      assert.match(
        readFileSync(file, "utf8"),
        new RegExp(`^node_join_last_run_success\\{command="${command}"\\} 1$`, "m"),
      );
    }
  });
}

test("status writes each CA certificate's expiry with its subject and pin, and promtool accepts the file", async () => {
  const { root, file } = await plantedRoot(() => {});
  const r = await runCli(["status", "--root", root]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  // subject, pin and NotAfter as openssl reads them from the CA's own certificate
  const openssl = (...args: string[]) =>
    execFileSync("openssl", ["x509", "-noout", ...args], { input: ca.caPem, encoding: "utf8" });
  const subject = openssl("-subject", "-nameopt", "RFC2253")
    .replace(/^subject=/, "")
    .trim();
  const notAfter =
    Date.parse(
      openssl("-enddate")
        .replace(/^notAfter=/, "")
        .trim(),
    ) / 1000;
  const text = readFileSync(file, "utf8");
  assert.ok(
    text.includes(
      `\nnode_join_ca_expiry_timestamp_seconds{ca="kubernetes",subject="${subject}",pin="${ca.pin}"} ${notAfter}\n`,
    ),
    text,
  );
  const check = checkMetrics(text);
  assert.equal(check.code, 0, check.output + text);
  assert.equal(check.output.trim(), "", "no lint warnings");
});

test("a textfile path that cannot be written (a directory there) is a warning: renew still succeeds", async () => {
  const { root, file } = await plantedRoot((p) => mkdirSync(p));
  const r = await runCli(["renew", "--root", root], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /warning: could not refresh the metrics textfile .*node_join\.prom: /);
  assert.ok(lstatSync(file).isDirectory(), "left as it was");
});
