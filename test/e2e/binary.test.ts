// The single binaries doing real work: a complete worker join with the x64 binary, and with the
// arm64 binary under qemu-aarch64-static, against the loopback CFSSL CA of the test suite; and the
// x64 binary against a real step-ca behind a TLS-terminating proxy (nginx; the jose part).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { tempRoot } from "../helpers/fs.js";
import { opensslInfo, opensslVerifies } from "../helpers/openssl.js";
import { binPath, ensurePackaged, ensureQemu, QEMU } from "../helpers/package.js";
import { startStepCa, stepWorkerJoin } from "../helpers/stepca.js";
import { startTlsProxy } from "../helpers/tls-proxy.js";

let ca: CfsslCa;
before(async () => {
  ensurePackaged();
  ensureQemu();
  ca = await startCfssl();
});
after(async () => {
  await ca?.stop();
});

const PART_LINE =
  /^node-join: debug: sea: ([\w.-]+): \d+ bytes of source, code cache (\w+)(?: \(([\w.-]+)\))?$/gm;
/** "part:cache" for each part the loader ran (NODE_JOIN_DEBUG=1), in order. */
const parts = (stderr: string) => [...stderr.matchAll(PART_LINE)].map((m) => `${m[1]}:${m[2]}`);
/** The code cache asset each part read (NODE_JOIN_DEBUG=1), sorted. */
const cacheAssets = (stderr: string) =>
  [...stderr.matchAll(PART_LINE)].map((m) => m[3] ?? `${m[1]}: none`).sort();

/** The public builtins the process had loaded at exit (NODE_JOIN_DEBUG=1: "sea: builtins: ..."). */
const builtins = (stderr: string): string[] => {
  const m = /^node-join: debug: sea: builtins: (.*)$/m.exec(stderr);
  assert.ok(m, `no builtins line in:\n${stderr}`);
  return m[1]!.split(" ");
};
// Heavy builtins that a renew with nothing due (and status) never uses, each with what loaded it
// by mistake before (packaging/README.md): a static import of node:child_process (net, dgram and
// more with it), undici's node:http2 (about 90 modules: readline, the REPL history, fs/promises;
// packaging/build.mjs LAZY_BUILTINS), node:tls for a plain-HTTP CA (it also parses Node's bundled
// roots), and what only a join, discover or hooks need.
const NEVER_IDLE = ["child_process", "dgram", "http2", "readline", "worker_threads", "zlib"];
const unusedLoaded = (stderr: string, never: string[]) =>
  builtins(stderr).filter((b) => never.includes(b));

for (const arch of ["x64", "arm64"] as const) {
  test(`${arch} single binary: complete worker join, status and renew (${arch === "arm64" ? "under qemu" : "native"})`, () => {
    const root = tempRoot(`nj-bin-${arch}-`);
    const keyFile = ca.installAuthKey(root);
    const argv = arch === "arm64" ? [...QEMU, binPath("arm64")] : [binPath("x64")];
    // env -i: nothing from this machine's Node.js installation is visible to the binary.
    // NODE_JOIN_DEBUG: the loader names each part it runs and whether V8 took its code cache.
    const run = (args: string[]) =>
      spawnSync("env", ["-i", "NODE_JOIN_DEBUG=1", ...argv, ...args], {
        encoding: "utf8",
        timeout: 300_000,
      });
    const join_ = run(
      cfsslWorkerJoin(root, ca, {
        "ca-auth-key-file": keyFile,
        "node-name": `w-${arch}`,
        ip: "10.0.0.31",
      }),
    );
    assert.equal(join_.status, 0, join_.stderr);
    assert.match(
      join_.stdout,
      new RegExp(`joined worker node w-${arch}: issued 2 certificate\\(s\\)`),
    );
    // The code caches trained at packaging time for this architecture are the ones V8 takes: for
    // a join, those trained by every command.
    assert.deepEqual(cacheAssets(join_.stderr), [
      "core.cache",
      "peculiar-x509.cache",
      "pkijs.cache",
      "reflect-metadata.cache",
      "undici.cache",
    ]);
    assert.deepEqual(
      parts(join_.stderr).sort(),
      [
        "core:accepted",
        "peculiar-x509:accepted",
        "pkijs:accepted",
        "reflect-metadata:accepted",
        "undici:accepted",
      ],
      join_.stderr,
    );
    const pem = readFileSync(
      join(
        root,
        "var/lib/kubelet/pki",
        readlinkSync(join(root, "var/lib/kubelet/pki/kubelet-server-current.pem")),
      ),
      "utf8",
    );
    const cert = pem.slice(0, pem.indexOf("-----BEGIN EC PRIVATE KEY-----"));
    assert.ok(opensslVerifies(cert, join(root, "etc/kubernetes/pki/ca.crt")));
    const info = opensslInfo(cert);
    assert.equal(info.cn, `system:node:w-${arch}`);
    assert.deepEqual(info.ips, ["10.0.0.31"]);
    const st = run(["status", "--root", root, "--json"]);
    assert.equal(st.status, 0, st.stderr);
    assert.equal(
      (JSON.parse(st.stdout) as { certificates: { managed: boolean }[] }).certificates.filter(
        (c) => c.managed,
      ).length,
      2,
    );
    // What the timer runs twice a day: the core, and undici to refresh the CA bundles (README
    // "Every run refreshes the CA bundles"); no x509 or path-validation chunk.
    const idle = run(["renew", "--root", root]);
    assert.equal(idle.status, 0, idle.stderr);
    assert.match(idle.stdout, /^nothing to renew/);
    assert.deepEqual(parts(idle.stderr).sort(), ["core:accepted", "undici:accepted"], idle.stderr);
    // The caches trained by the idle commands alone (packaging/sea-train.mjs --idle).
    assert.deepEqual(cacheAssets(idle.stderr), ["core.idle.cache", "undici.idle.cache"]);
    assert.deepEqual(cacheAssets(st.stderr), ["core.idle.cache"]);
    // CFSSL over plain HTTP: no TLS either.
    assert.deepEqual(unusedLoaded(idle.stderr, [...NEVER_IDLE, "tls"]), [], idle.stderr);
    // status reads files only: not even an HTTP client.
    assert.deepEqual(
      unusedLoaded(st.stderr, [...NEVER_IDLE, "tls", "http", "_http_client"]),
      [],
      st.stderr,
    );
    const disc = run(["discover", "--json"]);
    assert.equal(disc.status, 0, disc.stderr);
    assert.deepEqual(
      parts(disc.stderr).sort(),
      ["core:accepted", "systeminformation:accepted"],
      disc.stderr,
    );
    const rn = run(["renew", "--root", root, "--before", "9000h"]);
    assert.equal(rn.status, 0, rn.stderr);
    assert.match(rn.stdout, /^renewed 2: kubelet-client, kubelet-server/);
  });
}

test("x64 single binary with step-ca: join mints tokens with the jose part, and renews through a TLS-terminating proxy with a token", async () => {
  const step = await startStepCa();
  const proxy = await startTlsProxy(step);
  try {
    const root = tempRoot("nj-bin-step-");
    const workers = step.provisioners.find((p) => p.name === "workers")!;
    // Synchronous, as above: nginx and step-ca are processes of their own.
    const run = (args: string[], env: string[] = []) =>
      spawnSync("env", ["-i", "NODE_JOIN_DEBUG=1", ...env, binPath("x64"), ...args], {
        encoding: "utf8",
        timeout: 300_000,
      });
    const join_ = run(
      [
        ...stepWorkerJoin(root, { ...step, url: proxy.url }, { "ca-tls-file": proxy.tlsCaFile }),
        "--ca-provisioner",
        "workers",
        "--no-timer",
      ],
      [`NODE_JOIN_CA_PASSWORD=${workers.password}`],
    );
    assert.equal(join_.status, 0, join_.stderr);
    assert.match(join_.stdout, /joined worker node w1: issued 2 certificate\(s\)/);
    assert.ok(parts(join_.stderr).includes("jose:accepted"), join_.stderr);
    const rn = run(["renew", "--root", root, "--force"]);
    assert.equal(rn.status, 0, rn.stderr);
    assert.match(
      rn.stdout,
      /^ {2}renewed kubelet-client: forced \(renewed with a token signed by its key as mTLS was refused: the key is kept, step-ca has no token rekey\) -> serial/m,
    );
    assert.ok(parts(rn.stderr).includes("jose:accepted"), rn.stderr);
    // Nothing due: no jose, as for CFSSL.
    const idle = run(["renew", "--root", root]);
    assert.equal(idle.status, 0, idle.stderr);
    assert.deepEqual(parts(idle.stderr).sort(), ["core:accepted", "undici:accepted"], idle.stderr);
    // Over https: TLS, and still none of the others.
    assert.ok(builtins(idle.stderr).includes("tls"), idle.stderr);
    assert.deepEqual(unusedLoaded(idle.stderr, NEVER_IDLE), [], idle.stderr);
  } finally {
    await proxy.stop();
    await step.stop();
  }
});
