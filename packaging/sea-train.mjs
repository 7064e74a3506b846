// The training run behind the single binary's V8 code caches (agent/sea/loader.ts says why).
// packaging/package.mjs runs it once per architecture with that architecture's pinned Node (arm64
// under qemu-user): a V8 code cache is valid only for the V8 build and flags that made it.
//
//   node packaging/sea-train.mjs <parts dir> <work dir> [--idle]
//     <parts dir>: dist/sea's core.js and chunk .js files; <name>.cache is written next to each
//     --idle: a second run, in a process of its own, after the first (whose joined root it
//     finds in <work dir>): only the commands of agent/sea/loader.ts IDLE_COMMANDS (renew with
//     nothing due, status, version), from source; writes <name>.idle.cache for the parts they
//     load, then removes <work dir>
// env TRAIN_CA_URL, TRAIN_CA_PIN, TRAIN_CA_AUTH_KEY_FILE: a CFSSL CA with profiles client/serving
//
// It loads the parts through the binary's own loader and runs, in this one process, the commands
// whose start-up matters (join, renew with nothing due and forced, status, discover, version), then
// saves each script's code cache: V8 includes every function compiled so far, so these commands
// start without compiling. Any command failing fails the run (a cache of a broken path is useless).
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadCore } from "./sea-parts.mjs";

const [partsArg, workArg, mode] = process.argv.slice(2);
/** @param {string} k */
const env = (k) => process.env[k] || fail(`${k} is not set`);
/**
 * @param {string} msg
 * @returns {never}
 */
function fail(msg) {
  console.error(`sea-train: ${msg}`);
  process.exit(1);
}
if (!partsArg || !workArg || (mode !== undefined && mode !== "--idle"))
  fail("usage: node packaging/sea-train.mjs <parts dir> <work dir> [--idle]");
const parts = resolve(partsArg);
const work = resolve(workArg);
const idle = mode === "--idle";
// Train from source: caches of an earlier run would only be read back.
if (!idle)
  for (const f of readdirSync(parts).filter((n) => n.endsWith(".cache"))) rmSync(join(parts, f));
const { loader, core } = loadCore(parts, { caches: false });

/**
 * Runs one node-join command in this process; fails the run unless it exits 0 printing what expect
 * matches.
 * @param {string[]} args
 * @param {RegExp} expect
 */
async function run(args, expect) {
  let out = "";
  /** @param {string} t */
  const collect = (t) => void (out += t);
  const io = {
    stdout: collect,
    stderr: collect,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  };
  const code = await core.main(args, io);
  if (code !== 0 || !expect.test(out))
    fail(`node-join ${args.join(" ")}: exit ${code}, expected ${expect}\n${out}`);
}

/**
 * The jose chunk: the training CA is a CFSSL one, so no command here mints a step-ca token. This
 * runs what agent/ca/jose.ts and x5c.ts run (step-ca enrolment and token renewal): decrypt a
 * provisioner key as `step ca init` encrypts it (PBES2-HS256+A128KW, A256GCM), import it, sign a
 * one-time token and an x5cInsecure one, and compute a JWK thumbprint.
 */
async function trainJose() {
  const jose = /** @type {typeof import("jose")} */ (loader.load("jose"));
  const { generateKeyPairSync } = await import("node:crypto");
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const jwk = privateKey.export({ format: "jwk" });
  const password = new TextEncoder().encode("training");
  const jwe = await new jose.CompactEncrypt(new TextEncoder().encode(JSON.stringify(jwk)))
    .setProtectedHeader({ alg: "PBES2-HS256+A128KW", enc: "A256GCM", cty: "jwk+json", p2c: 1000 })
    .encrypt(password);
  jose.decodeProtectedHeader(jwe);
  const { plaintext } = await jose.compactDecrypt(jwe, password, {
    keyManagementAlgorithms: ["PBES2-HS256+A128KW", "PBES2-HS384+A192KW", "PBES2-HS512+A256KW"],
    contentEncryptionAlgorithms: ["A128GCM", "A192GCM", "A256GCM"],
    maxPBES2Count: 1_000_000,
  });
  const key = await jose.importJWK(JSON.parse(new TextDecoder().decode(plaintext)), "ES256");
  const kid = await jose.calculateJwkThumbprint(jwk);
  const now = Math.floor(Date.now() / 1000);
  const token = await new jose.SignJWT({ sub: "train", sans: ["train"] })
    .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
    .setIssuedAt(now)
    .sign(key);
  await new jose.SignJWT({})
    .setProtectedHeader({ alg: "ES256", typ: "JWT", x5cInsecure: ["AA=="] })
    .setIssuer("step-ca-client/1.0")
    .setSubject("train")
    .setAudience("https://ca/1.0/renew")
    .setJti("j")
    .setExpirationTime(now + 300)
    .sign(privateKey);
  jose.decodeJwt(token);
  console.log("sea-train: jose: decrypted, imported and signed");
}

/**
 * Writes each loaded part's code cache as <name><suffix>.
 * @param {string} suffix
 */
function saveCaches(suffix) {
  for (const s of loader.loaded()) {
    const data = s.script.createCachedData();
    writeFileSync(join(parts, `${s.name}${suffix}`), data);
    console.log(`sea-train: ${s.name}${suffix}: ${data.length} bytes of code cache`);
  }
}

const root = join(work, "root");
if (idle) {
  // What the timer and monitoring run on a joined node, nothing else in this process.
  await run(["version"], /^node-join /);
  await run(["status", "--root", root], /kubelet/);
  await run(["status", "--root", root, "--json"], /"certificates"|"kinds"|"ok"/);
  await run(["renew", "--root", root], /nothing to renew/);
  saveCaches(".idle.cache");
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
}
rmSync(work, { recursive: true, force: true });
mkdirSync(join(root, "etc/node-join"), { recursive: true });
const keyFile = join(root, "etc/node-join/ca-auth.key");
writeFileSync(keyFile, readFileSync(env("TRAIN_CA_AUTH_KEY_FILE")), { mode: 0o600 });
const ca = [
  "--ca-url",
  env("TRAIN_CA_URL"),
  "--ca-cert-hash",
  env("TRAIN_CA_PIN"),
  "--ca-auth-key-file",
  keyFile,
];

await run(["version"], /^node-join /);
await run(["version", "--json"], /"version"/);
await run(["discover", "--json"], /"addresses"|"ips"|"nodeName"/);
await run(
  [
    "join",
    "--root",
    root,
    "--no-timer",
    "--key-algorithm",
    "ecdsa-p256",
    "--api-server",
    "https://10.0.0.1:6443",
    ...ca,
    "--client-profile",
    "client",
    "--serving-profile",
    "serving",
    "--node-name",
    "train",
    "--ip",
    "10.0.0.21",
    "--ip",
    "2001:db8::21",
    "--dns-name",
    "train.lab",
  ],
  /issued 2 certificate/,
);
await run(["renew", "--root", root], /nothing to renew/);
await run(["status", "--root", root], /kubelet/);
await run(["status", "--root", root, "--json"], /"certificates"|"kinds"|"ok"/);
await run(["renew", "--root", root, "--force"], /renewed/);

await trainJose();

saveCaches(".cache");
// The joined root stays for the --idle run.
