// A pin you can paste, and errors that name the cause (issue 23, items 7, 8, 9): `node-join pin`
// and `node-join probe` against a real CFSSL (http and https) and a real step-ca, the pins they
// print being the ones join accepts; the wrong scheme, a server that is not a CA (python3's
// http.server, a real HTTP server answering HTML), and a CFSSL that wants an auth key.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { freePort, requireCommand, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { json, runCli } from "../helpers/cli.js";
import { expectFailure } from "../helpers/expect.js";
import { tempRoot } from "../helpers/fs.js";
import { waitListening } from "../helpers/listening.js";
import { startStepCa, type StepCaHandle } from "../helpers/stepca.js";

interface Row {
  subject: string;
  root: boolean;
  pin: string;
  fingerprint: string;
  notAfter: string;
}
interface Probe {
  ok: boolean;
  notice: string;
  certificates: Row[];
  tls: Row[];
}

let plain: CfsslCa;
let tls: CfsslCa;
/** Its default profile requires the auth key: cfssl serve does not serve /sign at all. */
let authOnly: CfsslCa;
let step: StepCaHandle;
let web: ChildProcess;
let webUrl: string;

before(async () => {
  requireCommand("python3", "python3-minimal");
  [plain, tls, authOnly, step] = await Promise.all([
    startCfssl(),
    startCfssl({ tls: true }),
    startCfssl({
      profiles: {
        default: { usages: ["signing", "key encipherment", "client auth", "server auth"] },
        client: { usages: ["signing", "key encipherment", "client auth"] },
        serving: { usages: ["signing", "key encipherment", "server auth"] },
      },
    }),
    startStepCa(),
  ]);
  const port = await freePort();
  web = spawn("python3", ["-m", "http.server", "--bind", "127.0.0.1", String(port)], {
    cwd: tempRoot("nj-web-"),
    stdio: "ignore",
  });
  await waitListening("python3 -m http.server", port, web);
  webUrl = `http://127.0.0.1:${port}`;
});
after(async () => {
  web?.kill();
  for (const ca of [plain, tls, authOnly]) await ca?.stop();
  await step?.stop();
});

async function probe(...args: string[]): Promise<Probe> {
  const r = await runCli(["probe", ...args, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return json<Probe>(r);
}

async function pinOf(file: string): Promise<Row[]> {
  const r = await runCli(["pin", file, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return json<{ certificates: Row[] }>(r).certificates;
}

test("probe of a plain-HTTP CFSSL: the pin of `node-join pin` on the CA's file, and the one join accepts", async () => {
  const p = await probe("--ca-url", plain.url);
  assert.match(p.notice, /compare out of band before you trust it/);
  assert.equal(p.certificates.length, 1);
  const [served] = p.certificates;
  assert.deepEqual(await pinOf(plain.caCertFile), p.certificates);
  assert.equal(served!.pin, plain.pin);
  assert.ok(served!.root);
  assert.deepEqual(p.tls, []);
  // The human output says it too, with the pin as --ca-cert-hash takes it.
  const text = await runCli(["probe", "--ca-url", plain.url]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^cfssl http:\S+: unverified: compare out of band before you trust it/);
  assert.match(text.stdout, new RegExp(`^ {5}pin: {9}${served!.pin}$`, "m"));
  // The pin as probed is the one join takes.
  const root = tempRoot("nj-probe-join-");
  const join = await runCli(
    cfsslWorkerJoin(
      root,
      { url: plain.url, pin: served!.pin },
      { "ca-auth-key-file": plain.installAuthKey(root) },
    ),
  );
  assert.equal(join.code, 0, join.stderr);
});

test("pin reads standard input, and names a file that is not there (exit 2)", async () => {
  const r = await runCli(["pin", "-"], { input: readFileSync(plain.caCertFile, "utf8") });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^ {3}pin: {9}${plain.pin}$`, "m"));
  const root = tempRoot("nj-pin-");
  await expectFailure(
    ["pin", `${root}/nope.crt`],
    2,
    /certificate file \S+nope\.crt does not exist/,
    root,
  );
});

test("probe of a CFSSL over https: its CA's pin, and the TLS chain it presents", async () => {
  const p = await probe("--ca-url", tls.url);
  assert.equal(p.certificates[0]!.pin, tls.pin);
  assert.deepEqual(await pinOf(tls.caCertFile), p.certificates);
  assert.ok(p.tls.length >= 1);
  assert.match(p.tls[0]!.subject, /CN=/);
});

test("probe of a step-ca: the root's fingerprint is the one --ca-fingerprint takes, its pin the one of its file", async () => {
  const p = await probe("--ca-url", step.url, "--ca-type", "step-ca");
  const root = p.certificates.find((c) => c.root);
  assert.ok(root, JSON.stringify(p.certificates));
  assert.equal(root.fingerprint, step.rootFingerprint);
  assert.deepEqual(await pinOf(step.rootFile), [root]);
  // The TLS chain ends at the intermediate that signs the leaves (step-ca's authority/tls.go).
  const intermediate = (await pinOf(step.intermediateFile))[0]!;
  assert.ok(
    p.tls.some((c) => c.pin === intermediate.pin),
    JSON.stringify(p.tls),
  );
});

test("https:// to a plain-HTTP CFSSL fails at once (exit 4), suggesting http://", async () => {
  const root = tempRoot("nj-scheme-");
  const url = plain.url.replace("http:", "https:");
  const started = Date.now();
  await expectFailure(
    cfsslWorkerJoin(root, { url, pin: plain.pin }),
    4,
    new RegExp(
      `the server does not speak TLS \\(ERR_SSL_WRONG_VERSION_NUMBER\\): if it serves plain HTTP, give its URL as ${plain.url}$`,
      "m",
    ),
    root,
  );
  // Not retried for the 5-minute default timeout: one attempt (an upper bound, not a timing).
  assert.ok(Date.now() - started < 60_000);
});

test("http:// to a TLS server (CFSSL over https, a step-ca) fails at once (exit 4), suggesting https://", async () => {
  const root = tempRoot("nj-scheme-");
  const url = tls.url.replace("https:", "http:");
  await expectFailure(
    cfsslWorkerJoin(root, { url, pin: tls.pin }),
    4,
    new RegExp(
      `the server speaks TLS and refused a plain HTTP request \\(HTTP 400 "Client sent an HTTP request to an HTTPS server\\."\\): give its URL as ${tls.url}$`,
      "m",
    ),
    root,
  );
  await expectFailure(
    ["probe", "--ca-type", "step-ca", "--ca-url", step.url.replace("https:", "http:")],
    4,
    /step-ca http:\S+: the server speaks TLS and refused a plain HTTP request .*: give its URL as https:\/\/127\.0\.0\.1:\d+$/m,
    root,
  );
});

test("a server that answers but is not a CA (an HTML page, a 501) is not a CFSSL/step-ca API (exit 4)", async () => {
  const root = tempRoot("nj-notca-");
  // python3's http.server answers POST with 501 and an HTML page: not retried as unreachable.
  await expectFailure(
    cfsslWorkerJoin(root, { url: webUrl, pin: plain.pin }),
    4,
    /: not a CFSSL API: it answered HTTP 501 with an HTML page \(check the CA URL/,
    root,
  );
  await expectFailure(
    ["probe", "--ca-url", webUrl],
    4,
    /: not a CFSSL API: it answered HTTP 501 with an HTML page/,
    root,
  );
  await expectFailure(
    ["probe", "--ca-type", "step-ca", "--ca-url", webUrl],
    4,
    /: not a step-ca API: it answered HTTP 404 with an HTML page/,
    root,
  );
});

test("no auth key for a CFSSL that wants one: the CA refused an unauthenticated request, naming --ca-auth-key-file (exit 4)", async () => {
  // Its default profile has an auth key: /api/v1/cfssl/sign answers a plain 404 (not JSON).
  const root = tempRoot("nj-noauth-");
  await expectFailure(
    cfsslWorkerJoin(root, { url: authOnly.url, pin: authOnly.pin }),
    4,
    /signing kubelet-client \(profile client\): the CA refused an unauthenticated signing request \(its profile requires an auth key\): give the profile's auth key with --ca-auth-key-file, config cas\.kubernetes\.authKeyFile$/m,
    root,
  );
  // Only the named profile has one: CFSSL answers "authentication required".
  await expectFailure(
    cfsslWorkerJoin(root, { url: plain.url, pin: plain.pin }),
    4,
    /signing kubelet-client \(profile client\): the CA refused an unauthenticated signing request .*--ca-auth-key-file/,
    root,
  );
});
