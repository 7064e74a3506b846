// A proxy between the node and the CA (README "Proxy"): a real tinyproxy on loopback in front of a
// real CFSSL (http://, absolute-form requests) and a real step-ca (https://, a CONNECT tunnel with
// TLS end to end): join and renew through it, NO_PROXY, a proxy that is down, Basic credentials,
// and proxies that answer for the CA (a TLS-intercepting one, a captive portal), refused.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import YAML from "yaml";
import { cfsslWorkerJoin } from "../../scripts/lib/args.js";
import { freePort, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { runCli, type CliResult } from "../helpers/cli.js";
import {
  startCaptivePortal,
  startInterceptingProxy,
  startRefusingProxy,
  type MisbehavingProxy,
} from "../helpers/connect-proxy.js";
import { tempRoot } from "../helpers/fs.js";
import { startStepCa, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";
import { startTinyproxy, type Tinyproxy } from "../helpers/tinyproxy.js";

const PASSWORD = "pr0xy-s3cret";
let ca: CfsslCa;
let step: StepCaHandle;
let proxy: Tinyproxy;
let authProxy: Tinyproxy;
let intercepting: MisbehavingProxy;
let portal: MisbehavingProxy;
before(async () => {
  [ca, step, proxy, authProxy, intercepting, portal] = await Promise.all([
    startCfssl(),
    startStepCa({ provisioners: [{ name: "workers", organization: ["system:nodes"] }] }),
    startTinyproxy(),
    startTinyproxy({ basicAuth: { user: "node", password: PASSWORD } }),
    startInterceptingProxy(),
    startCaptivePortal(),
  ]);
});
after(async () => {
  await Promise.all([
    ca?.stop(),
    step?.stop(),
    proxy?.stop(),
    authProxy?.stop(),
    intercepting?.close(),
    portal?.close(),
  ]);
});

const hostPort = (url: string) => new URL(url).host;
const stepJoin = (root: string, more: Record<string, string | boolean | undefined> = {}) =>
  stepWorkerJoin(root, step, {
    "ca-provisioner": "workers",
    "ca-password-file": step.provisioners[0]!.passwordFile,
    ...more,
  });
const configOf = (root: string) =>
  YAML.parse(readFileSync(join(root, "etc/node-join/config.yaml"), "utf8")) as {
    proxy?: Record<string, unknown>;
  };
function secretFile(root: string, name: string, text: string): string {
  const dir = join(root, "etc/node-join");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, text);
  chmodSync(file, 0o600);
  return file;
}
/** The one error line, and no secret anywhere in the output. */
function errorLine(r: CliResult): string {
  assert.ok(!`${r.stdout}${r.stderr}`.includes(PASSWORD), "the proxy password is never printed");
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("node-join: error: "));
  assert.equal(lines.length, 1, r.stderr);
  return lines[0]!;
}

test("CFSSL: join through http_proxy (absolute-form), kept in the config; the timer's renew goes through it without the variable", async () => {
  const root = tempRoot("nj-proxy-");
  const keyFile = ca.installAuthKey(root);
  const seen = proxy.requests().length;
  const j = await runCli(cfsslWorkerJoin(root, ca, { "ca-auth-key-file": keyFile }), {
    // Upper-case HTTP_PROXY is ignored, as curl ignores it (httpoxy): a dead port there is
    // harmless.
    env: { http_proxy: proxy.url, HTTP_PROXY: "http://127.0.0.1:9" },
  });
  assert.equal(j.code, 0, j.stderr);
  assert.ok(
    j.stderr.includes(
      `kept proxy.http ${proxy.url} from http_proxy in the config: renewals use it\n`,
    ),
    j.stderr,
  );
  const joined = proxy.requests().slice(seen);
  assert.ok(joined.includes(`POST ${ca.url}/api/v1/cfssl/info`), joined.join("\n"));
  assert.ok(joined.includes(`POST ${ca.url}/api/v1/cfssl/authsign`), joined.join("\n"));
  assert.deepEqual(configOf(root).proxy, { http: proxy.url });

  const before = proxy.requests().length;
  const r = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(
    proxy.requests().slice(before).includes(`POST ${ca.url}/api/v1/cfssl/authsign`),
    "renew went through the proxy the config names",
  );
});

test("step-ca: join through HTTPS_PROXY (a CONNECT tunnel, TLS end to end with the CA), then renew", async () => {
  const root = tempRoot("nj-proxy-step-");
  const seen = proxy.requests().length;
  const j = await runCli(stepJoin(root), { env: { HTTPS_PROXY: proxy.url } });
  assert.equal(j.code, 0, j.stderr);
  assert.ok(
    proxy
      .requests()
      .slice(seen)
      .includes(`CONNECT ${hostPort(step.url)}`),
    proxy.requests().join("\n"),
  );
  assert.deepEqual(configOf(root).proxy, { https: proxy.url });
  const before = proxy.requests().length;
  const r = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(proxy.requests().length > before, "renew tunnelled through the proxy");
});

test("NO_PROXY: a CA it names is reached directly, the proxy down or not", async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  for (const noProxy of ["127.0.0.1", "127.0.0.0/8", `127.0.0.1:${new URL(step.url).port}`, "*"]) {
    const root = tempRoot("nj-noproxy-");
    const r = await runCli(stepJoin(root), { env: { https_proxy: dead, NO_PROXY: noProxy } });
    assert.equal(r.code, 0, `NO_PROXY=${noProxy}: ${r.stderr}`);
  }
  // A NO_PROXY entry for another port does not match: the proxy is used, and it is down.
  const root = tempRoot("nj-noproxy-");
  const r = await runCli([...stepJoin(root), "--timeout", "1s"], {
    env: { https_proxy: dead, no_proxy: "127.0.0.1:1" },
  });
  assert.equal(r.code, 3, r.stderr);
});

test("a proxy that is down: retried until --timeout, then exit 3 naming the CA and the proxy", async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  const root = tempRoot("nj-proxy-down-");
  const keyFile = ca.installAuthKey(root);
  const r = await runCli(
    [...cfsslWorkerJoin(root, ca, { "ca-auth-key-file": keyFile }), "--timeout", "2s"],
    { env: { http_proxy: dead } },
  );
  assert.equal(r.code, 3, r.stderr);
  assert.equal(
    errorLine(r),
    `node-join: error: CA kubernetes (cfssl ${ca.url}) unreachable through proxy ${dead}: connection refused (ECONNREFUSED)`,
  );
  assert.match(
    r.stderr,
    /attempt 1 failed through proxy http:\/\/127\.0\.0\.1:\d+ \(connection refused \(ECONNREFUSED\)\); retrying/,
  );
});

test("the proxy up, the CA behind it down: its 5xx is retried until --timeout, then exit 3 naming both", async () => {
  const deadCa = `127.0.0.1:${await freePort()}`;
  const root = tempRoot("nj-proxy-ca-down-");
  const keyFile = ca.installAuthKey(root);
  const cases: [string[], NodeJS.ProcessEnv, string][] = [
    [
      cfsslWorkerJoin(root, { ...ca, url: `http://${deadCa}` }, { "ca-auth-key-file": keyFile }),
      { http_proxy: proxy.url },
      `node-join: error: CA kubernetes (cfssl http://${deadCa}) unreachable through proxy ${proxy.url}: it answered HTTP 500 to POST http://${deadCa}/api/v1/cfssl/info`,
    ],
    [
      stepJoin(tempRoot("nj-proxy-ca-down-"), { "ca-url": `https://${deadCa}` }),
      { https_proxy: proxy.url },
      `node-join: error: CA kubernetes (step-ca https://${deadCa}) unreachable through proxy ${proxy.url}: it answered HTTP 500 Unable to connect to CONNECT ${deadCa}`,
    ],
  ];
  for (const [join, env, message] of cases) {
    const r = await runCli([...join, "--timeout", "2s"], { env });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(errorLine(r), message);
  }
});

test("proxy credentials: from a 0600 file or the variable's URL they work; wrong ones are refused (exit 4), never printed", async () => {
  // Without credentials: the proxy's 407 names how to give them. (tinyproxy answers wrong ones with
  // 401, not 407: both are a refusal of the credentials.)
  const root0 = tempRoot("nj-proxy-auth-");
  const none = await runCli([...stepJoin(root0), "--https-proxy", authProxy.url]);
  assert.equal(none.code, 4, none.stderr);
  assert.equal(
    errorLine(none),
    `node-join: error: CA kubernetes (step-ca ${step.url}): proxy ${authProxy.url} requires credentials (HTTP 407 Proxy Authentication Required): give them in --proxy-credentials-file (config key proxy.credentialsFile) or NODE_JOIN_PROXY_CREDENTIALS`,
  );

  const root = tempRoot("nj-proxy-auth-");
  const file = secretFile(root, "proxy-credentials", `node:${PASSWORD}\n`);
  const ok = await runCli([
    ...stepJoin(root),
    "--https-proxy",
    authProxy.url,
    "--proxy-credentials-file",
    file,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(!`${ok.stdout}${ok.stderr}`.includes(PASSWORD));
  assert.ok(!readFileSync(join(root, "etc/node-join/config.yaml"), "utf8").includes(PASSWORD));

  // In the standard variable's URL, as curl takes them: used, and neither printed nor persisted.
  const root2 = tempRoot("nj-proxy-auth-");
  const url = new URL(authProxy.url);
  const fromEnv = await runCli(stepJoin(root2), {
    env: { https_proxy: `http://node:${PASSWORD}@${url.host}` },
  });
  assert.equal(fromEnv.code, 0, fromEnv.stderr);
  assert.ok(!`${fromEnv.stdout}${fromEnv.stderr}`.includes(PASSWORD));
  assert.ok(
    fromEnv.stderr.includes(
      `kept proxy.https ${authProxy.url} from https_proxy in the config: renewals use it (not its credentials: give renewals --proxy-credentials-file, config proxy.credentialsFile)`,
    ),
    fromEnv.stderr,
  );
  assert.deepEqual(configOf(root2).proxy, { https: authProxy.url });

  const root3 = tempRoot("nj-proxy-auth-");
  const wrong = await runCli([...stepJoin(root3), "--https-proxy", authProxy.url], {
    env: { NODE_JOIN_PROXY_CREDENTIALS: `node:not-${PASSWORD}` },
  });
  assert.equal(wrong.code, 4, wrong.stderr);
  assert.equal(
    errorLine(wrong),
    `node-join: error: CA kubernetes (step-ca ${step.url}): proxy ${authProxy.url} refused the credentials from NODE_JOIN_PROXY_CREDENTIALS (HTTP 401 Unauthorized)`,
  );
  assert.ok(!wrong.stderr.includes("retrying"), "a refusal is not retried");

  // A proxy URL with credentials in a flag is refused before anything is sent, the password hidden.
  const flagged = await runCli([
    ...stepJoin(tempRoot("nj-proxy-auth-")),
    "--https-proxy",
    `http://node:${PASSWORD}@${url.host}`,
  ]);
  assert.equal(flagged.code, 2, flagged.stderr);
  assert.equal(
    errorLine(flagged),
    `node-join: error: --https-proxy: http://node:***@${url.host} carries credentials: give them in a file (--proxy-credentials-file, config key proxy.credentialsFile) or NODE_JOIN_PROXY_CREDENTIALS`,
  );
});

test("a proxy that forbids CONNECT to the CA's port: exit 4 naming the proxy and its answer, not retried", async () => {
  const strict = await startTinyproxy({ connectPorts: [443] });
  try {
    const r = await runCli(stepJoin(tempRoot("nj-proxy-403-")), {
      env: { https_proxy: strict.url },
    });
    assert.equal(r.code, 4, r.stderr);
    assert.equal(
      errorLine(r),
      `node-join: error: CA kubernetes (step-ca ${step.url}): proxy ${strict.url} refused CONNECT ${hostPort(step.url)} (HTTP 403 Access violation)`,
    );
    assert.ok(!r.stderr.includes("retrying"), r.stderr);
  } finally {
    await strict.stop();
  }
});

/** The step-ca join of a new root through the https proxy `proxyUrl`: exit 5 with `message`. */
async function stepJoinRefused(proxyUrl: string, prefix: string, message: string): Promise<string> {
  const root = tempRoot(prefix);
  const r = await runCli(stepJoin(root), { env: { https_proxy: proxyUrl } });
  assert.equal(r.code, 5, r.stderr);
  assert.equal(errorLine(r), message);
  return root;
}

test("a TLS-intercepting proxy is refused like any impostor (exit 5), nothing installed", async () => {
  const root = await stepJoinRefused(
    intercepting.url,
    "nj-proxy-mitm-",
    `node-join: error: CA kubernetes (step-ca ${step.url}): TLS certificate of the server does not verify against the pinned CA (DEPTH_ZERO_SELF_SIGNED_CERT) (through proxy ${intercepting.url})`,
  );
  assert.ok(intercepting.requests.includes(`CONNECT ${hostPort(step.url)}`));
  assert.ok(!existsSync(join(root, "var/lib/kubelet/pki")), "nothing was installed");
});

test("a captive portal answering for the CA is refused: CONNECT answered with a page (exit 5), an http:// request answered itself (exit 4)", async () => {
  await stepJoinRefused(
    portal.url,
    "nj-proxy-portal-",
    `node-join: error: CA kubernetes (step-ca ${step.url}): proxy ${portal.url} answered CONNECT ${hostPort(step.url)} itself (HTTP 200 OK with a body) instead of opening a tunnel: a captive portal or an impostor; refused`,
  );

  const root2 = tempRoot("nj-proxy-portal-");
  const keyFile = ca.installAuthKey(root2);
  const c = await runCli(cfsslWorkerJoin(root2, ca, { "ca-auth-key-file": keyFile }), {
    env: { http_proxy: portal.url },
  });
  assert.equal(c.code, 4, c.stderr);
  assert.equal(
    errorLine(c),
    `node-join: error: CA kubernetes (cfssl ${ca.url}): answer is not JSON ("<html><head><title>Welcome to the guest network</title></head><body>Log in</body")`,
  );
});

test("a proxy's CONNECT status line carrying terminal escapes and a CR is printed escaped (exit 4)", async () => {
  // Latin-1 on the wire, as HTTP/1.1 reads a reason phrase (RFC 9112 4): one byte a character.
  const text = "\x1b]0;owned\x07no\x1b[2K\rrenewed 2: all good\x9b31m";
  const hostile = await startRefusingProxy(`HTTP/1.1 403 ${text}`);
  try {
    const r = await runCli(stepJoin(tempRoot("nj-proxy-hostile-")), {
      env: { https_proxy: hostile.url },
    });
    assert.equal(hostile.requests.length > 0, true, "the CONNECT reached the proxy");
    assert.ok(r.code === 3 || r.code === 4, `exit ${r.code}: ${r.stderr}`);
    for (const raw of ["\x1b", "\x07", "\r", "\x9b"])
      assert.ok(!r.stderr.includes(raw), `raw ${JSON.stringify(raw)} on stderr:\n${r.stderr}`);
    assert.ok(
      r.stderr.includes("403 \\x1b]0;owned\\x07no\\x1b[2K\\rrenewed 2: all good\\x9b31m"),
      r.stderr,
    );
  } finally {
    await hostile.close();
  }
});
