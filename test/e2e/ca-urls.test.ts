// More than one server for a CA (--ca-url repeated): two real `cfssl serve` sharing one CA's
// certificate, key and auth key, a server that is down, one that answers 503, one with a foreign
// CA and one that refuses the auth key. A proxy in front of the second server counts what it was
// asked. And one real step-ca behind a dead URL.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { freePort, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { runCli } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { tempRoot } from "../helpers/fs.js";
import { startProxy, type Proxy, type ProxyAction } from "../helpers/proxy.js";
import { startStepCa, stepCaLog, stepWorkerJoin } from "../helpers/stepca.js";

let first: CfsslCa;
let second: CfsslCa;
/** In front of the first server: answers 503 (a crashed CA behind a load balancer) or forwards. */
let firstProxy: Proxy;
let firstMode: ProxyAction = { type: "forward" };
/** In front of the second server, counting its requests. */
let secondProxy: Proxy;
/** Nothing listens there: connection refused. */
let dead: string;
const servers: CfsslCa[] = [];

before(async () => {
  first = await startCfssl();
  second = await startCfssl({
    ca: { cert: first.caCertFile, key: first.caKeyFile },
    authKeyHex: first.authKeyHex,
  });
  servers.push(first, second);
  firstProxy = await startProxy(first.url, () => firstMode);
  secondProxy = await startProxy(second.url, () => ({ type: "forward" }));
  dead = `http://127.0.0.1:${await freePort()}`;
});
after(async () => {
  await firstProxy?.close();
  await secondProxy?.close();
  for (const s of servers) await s.stop();
});

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The server each CA last answered from, as the state file remembers it. */
function remembered(root: string): Record<string, string> | undefined {
  const file = join(root, "var/lib/node-join/state.json");
  return (JSON.parse(readFileSync(file, "utf8")) as { caUrls?: Record<string, string> }).caUrls;
}

/** The standard worker join against the CA's servers at `urls`, in that order. */
function joinArgs(root: string, urls: string[], more: Record<string, string> = {}): string[] {
  const keyFile = first.installAuthKey(root);
  return cfsslWorkerJoin(
    root,
    { url: urls[0]!, pin: first.pin },
    { "ca-url": urls, "ca-auth-key-file": keyFile, ...more },
  );
}

test("servers down or answering 503 are passed over, the next one issues; it is remembered and asked first by renew", async () => {
  const root = tempRoot("nj-urls-");
  firstMode = { type: "respond", status: 503, body: "upstream down" };
  const r = await runCli(joinArgs(root, [dead, firstProxy.url, secondProxy.url]));
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `^node-join: CA kubernetes \\(cfssl ${esc(dead)}\\): connection refused \\(ECONNREFUSED\\); trying ${esc(firstProxy.url)}\\n` +
        `node-join: CA kubernetes \\(cfssl ${esc(firstProxy.url)}\\): HTTP 503; trying ${esc(secondProxy.url)}$`,
      "m",
    ),
  );
  // Once the second answered, the sign requests went straight to it.
  assert.equal(r.stderr.match(/trying/g)?.length, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`from CA kubernetes \\(cfssl ${esc(secondProxy.url)}\\)`));
  assert.equal(second.signRequests(), 2, "the second server signed both certificates");
  assert.deepEqual(remembered(root), { kubernetes: secondProxy.url });

  // The first server is back; renew still starts with the second, the one that answered last.
  firstMode = { type: "forward" };
  const asked = firstProxy.requests.length;
  const renewed = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(renewed.code, 0, renewed.stderr);
  assert.doesNotMatch(renewed.stderr, /trying/);
  assert.equal(firstProxy.requests.length, asked, "renew did not ask the first server");
  assert.equal(second.signRequests(), 4);
});

test("every server down: retried until --timeout, then exit 3 naming each server and its failure", async () => {
  const root = tempRoot("nj-urls-");
  firstMode = { type: "respond", status: 503, body: "upstream down" };
  const t0 = Date.now();
  const r = await expectFailure(
    joinArgs(root, [dead, firstProxy.url], { timeout: "3s" }),
    3,
    new RegExp(
      `^(node-join: error: )?CA kubernetes \\(cfssl\\) unreachable: ${esc(dead)} connection refused \\(ECONNREFUSED\\); ${esc(firstProxy.url)} HTTP 503$`,
      "m",
    ),
    root,
  );
  assert.ok(Date.now() - t0 >= 2_500, "it retried until the timeout");
  assert.match(
    r.stderr,
    /^node-join: CA kubernetes \(cfssl\): attempt 1 failed \(.*\); retrying in /m,
  );
});

/**
 * A join whose first server stops it with `code` and the error `body` (a regular expression):
 * nothing written (expectFailure), the second server not asked.
 */
async function stopsAtFirst(firstUrl: string, code: number, body: string): Promise<void> {
  const root = tempRoot("nj-urls-");
  const asked = secondProxy.requests.length;
  const message = new RegExp(`^(node-join: error: )?${body}`, "m");
  await expectFailure(joinArgs(root, [firstUrl, secondProxy.url]), code, message, root);
  assert.equal(secondProxy.requests.length, asked, "the second server received no request");
}

test("a first server with a foreign CA: exit 5, nothing written, the second server is not asked to cover for it", async () => {
  const foreign = await startCfssl();
  servers.push(foreign);
  await stopsAtFirst(
    foreign.url,
    5,
    `CA kubernetes \\(cfssl ${esc(foreign.url)}\\): CA certificate pin ${esc(foreign.pin)} matches no --ca-cert-hash \\(config key cas\\.kubernetes\\.certHashes\\); refusing to trust it$`,
  );
});

test("a refusal (the first server does not know the auth key): exit 4, the second server is not asked", async () => {
  const other = await startCfssl({ ca: { cert: first.caCertFile, key: first.caKeyFile } });
  servers.push(other);
  await stopsAtFirst(
    other.url,
    4,
    `CA kubernetes \\(cfssl ${esc(other.url)}\\) signing kubelet-client \\(profile client\\) refused: invalid token: the CA refused the auth key`,
  );
});

test("step-ca: a dead server first; the live one enrols with tokens minted for its own URL, and renew rekeys there first over mTLS", async () => {
  const step = await startStepCa();
  try {
    const root = tempRoot("nj-urls-step-");
    mkdirSync(join(root, "etc/node-join"), { recursive: true });
    const pw = join(root, "etc/node-join/ca.password");
    writeFileSync(pw, step.provisioners.find((p) => p.name === "workers")!.password, {
      mode: 0o600,
    });
    const deadTls = `https://127.0.0.1:${await freePort()}`;
    const r = await runCli(
      stepWorkerJoin(root, step, {
        "ca-url": [deadTls, step.url],
        "ca-provisioner": "workers",
        "ca-password-file": pw,
      }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^node-join: CA kubernetes \\(step-ca ${esc(deadTls)}\\): connection refused \\(ECONNREFUSED\\); trying ${esc(step.url)}$`,
        "m",
      ),
    );
    assert.deepEqual(remembered(root), { kubernetes: step.url });

    const rekeys = (stepCaLog(step).match(/path=\/1\.0\/rekey /g) ?? []).length;
    const renewed = await runCli(["renew", "--root", root, "--force"]);
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.doesNotMatch(renewed.stderr, /trying/, "the remembered server is asked first");
    assert.equal((stepCaLog(step).match(/path=\/1\.0\/rekey /g) ?? []).length - rekeys, 2);
  } finally {
    await step.stop();
  }
});
