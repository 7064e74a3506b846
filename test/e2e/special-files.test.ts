// A FIFO where node-join reads a file: the kubelet's -current.pem links, the files they point to,
// the state file, a --ca-file. open(2) on a FIFO waits for a writer, so a read that is not
// non-blocking and regular-file-only hangs the command forever; node-join must refuse at once
// (exit 6, naming the file). node-join runs as a separate process, against a real CFSSL, each with
// a kill timer: a regression fails here instead of hanging the suite.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, lstatSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { runCli, type CliResult } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";

const PKI = "var/lib/kubelet/pki";
/** Far below a hang, far above a refusal (which needs no CA). */
const TIMEOUT_MS = 15_000;

let ca: CfsslCa;
/** A worker root joined once; each case works on a copy. */
let joined: string;

before(async () => {
  ca = await startCfssl();
  joined = tempRoot("nj-fifo-joined-");
  ca.installAuthKey(joined);
  const r = await runCli(
    cfsslWorkerJoin(
      joined,
      { url: ca.url, pin: ca.pin },
      { "ca-auth-key-file": join(joined, "etc/node-join/ca-auth.key") },
    ),
  );
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  await ca?.stop();
});

/** A copy of the joined root (links copied as links). */
function copyRoot(): string {
  const root = tempRoot("nj-fifo-");
  cpSync(joined, root, { recursive: true, verbatimSymlinks: true });
  return root;
}

function mkfifo(path: string): void {
  rmSync(path, { force: true });
  assert.equal(spawnSync("mkfifo", [path]).status, 0, `mkfifo ${path}`);
}

/** Where a FIFO is planted, relative to the root (resolved on the copy for the links' targets). */
const PLACES: { name: string; rel: (root: string) => string }[] = [
  ...["kubelet-client", "kubelet-server"].flatMap((prefix) => [
    { name: `${prefix}-current.pem`, rel: () => `${PKI}/${prefix}-current.pem` },
    {
      name: `the file ${prefix}-current.pem links to`,
      rel: (root: string) => `${PKI}/${readlinkSync(join(root, PKI, `${prefix}-current.pem`))}`,
    },
  ]),
  { name: "state.json", rel: () => "var/lib/node-join/state.json" },
];

const COMMANDS: string[][] = [["status"], ["renew"], ["renew", "--force"], ["leave", "--dry-run"]];

function assertRefused(r: CliResult & { ms: number }, fifo: string, what: string): void {
  assert.notEqual(r.code, 137, `${what}: killed after ${r.ms} ms, blocked on the FIFO ${fifo}`);
  assert.equal(r.code, 6, `${what}: exit ${r.code}\n${r.stderr}`);
  assert.ok(r.stderr.includes(fifo), `${what}: stderr names ${fifo}:\n${r.stderr}`);
  assert.ok(lstatSync(fifo).isFIFO(), `${what}: the FIFO is left for the operator`);
}

async function timed(args: string[]): Promise<CliResult & { ms: number }> {
  const t0 = Date.now();
  const r = await runCli(args, { timeoutMs: TIMEOUT_MS });
  return { ...r, ms: Date.now() - t0 };
}

for (const place of PLACES) {
  test(`a FIFO at ${place.name}: status, renew, renew --force and leave --dry-run refuse it at once (exit 6, naming it)`, async () => {
    // A root each: the commands run at once, and renew takes the lock.
    const results = await Promise.all(
      COMMANDS.map(async (c) => {
        const root = copyRoot();
        const fifo = join(root, place.rel(root));
        mkfifo(fifo);
        return { c, r: await timed([...c, "--root", root]), fifo };
      }),
    );
    for (const { c, r, fifo } of results) assertRefused(r, fifo, `${c.join(" ")} (${place.name})`);
  });
}

test("trust add --ca-file naming a FIFO refuses it at once (exit 6, naming it)", async () => {
  const root = copyRoot();
  const fifo = join(tempRoot("nj-fifo-ca-"), "new-ca.crt");
  mkfifo(fifo);
  const r = await timed(["trust", "add", "--root", root, "--ca", "kubernetes", "--ca-file", fifo]);
  assertRefused(r, fifo, "trust add --ca-file");
});
