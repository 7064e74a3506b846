// The proxy a CA request takes (agent/ca/proxy.ts), chosen as curl chooses it: the NO_PROXY
// matcher, proxy URLs, the standard variables and their precedence, and how the CLI refuses a
// proxy setting it cannot use (exit 2, the password never shown). Real proxies: test/e2e/proxy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import {
  noProxyMatches,
  parseProxyUrl,
  proxyRouteFor,
  redactUrl,
  standardProxyEnv,
} from "../../agent/ca/proxy.js";
import { readProxyConfig } from "../../agent/ca/secrets.js";
import { loadSettings } from "../../agent/config/load.js";
import { fakeClock } from "../helpers/fake-ca.js";
import { tempRoot } from "../helpers/fs.js";
import { runMain } from "../helpers/in-process-cli.js";

test("NO_PROXY matches as curl's: names and their subdomains, IPs and CIDRs as numbers, *, :port", () => {
  const cases: [string, number, string[], boolean][] = [
    ["ca.example.com", 443, ["example.com"], true],
    ["ca.example.com", 443, [".example.com"], true],
    ["example.com", 443, [".example.com"], true],
    ["CA.Example.COM.", 443, ["example.com"], true],
    ["badexample.com", 443, ["example.com"], false],
    ["example.com.evil", 443, ["example.com"], false],
    ["ca.example.com", 443, ["other.com", " example.com "], true],
    ["anything", 8888, ["*"], true],
    ["10.1.2.3", 8888, ["10.0.0.0/8"], true],
    ["11.1.2.3", 8888, ["10.0.0.0/8"], false],
    ["10.1.2.3", 8888, ["10.1.2.3"], true],
    ["10.1.2.3", 8888, ["10.1.2.4"], false],
    ["::1", 9000, ["0:0::1"], true],
    ["[::1]", 9000, ["::1"], true],
    ["fd00::5", 9000, ["fd00::/8"], true],
    ["fe80::5", 9000, ["fd00::/8"], false],
    ["10.1.2.3", 9000, ["10.1.2.3:9000"], true],
    ["10.1.2.3", 9001, ["10.1.2.3:9000"], false],
    ["ca.example.com", 9000, ["example.com:9000"], true],
    ["ca.example.com", 443, ["example.com:9000"], false],
    ["::1", 9000, ["[::1]:9000"], true],
    // An IP entry does not match a name, nor a name an IP; invalid entries are ignored.
    ["localhost", 80, ["127.0.0.1"], false],
    ["127.0.0.1", 80, ["localhost"], false],
    ["ca", 80, ["not a host", "10.0.0.0/99", ""], false],
    ["ca", 80, [], false],
  ];
  for (const [host, port, list, want] of cases)
    assert.equal(
      noProxyMatches(host, port, list),
      want,
      `${host}:${port} in ${JSON.stringify(list)}`,
    );
});

test("NO_PROXY: every host is below its own parent domains, never below a sibling's", () => {
  const label = fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/);
  fc.assert(
    fc.property(fc.array(label, { minLength: 2, maxLength: 5 }), label, (labels, other) => {
      const host = labels.join(".");
      for (let i = 1; i < labels.length; i++) {
        const parent = labels.slice(i).join(".");
        assert.ok(noProxyMatches(host, 443, [parent]));
        assert.ok(noProxyMatches(host, 443, [`.${parent}`]));
      }
      fc.pre(other !== labels.at(-1));
      assert.ok(!noProxyMatches(host, 443, [other]));
    }),
  );
});

test("proxy URLs are read as curl reads them: http:// and port 1080 by default; only http:// proxies", () => {
  assert.deepEqual(parseProxyUrl("proxy.lab"), {
    url: "http://proxy.lab:1080",
    host: "proxy.lab",
    port: 1080,
  });
  assert.deepEqual(parseProxyUrl("http://proxy.lab:80/"), {
    url: "http://proxy.lab:80",
    host: "proxy.lab",
    port: 80,
  });
  assert.deepEqual(parseProxyUrl("http://u%40x:p%3Aw@[::1]:3128"), {
    url: "http://[::1]:3128",
    host: "::1",
    port: 3128,
    user: "u@x",
    password: "p:w",
  });
  assert.equal(
    parseProxyUrl("socks5://u:pw@proxy:1080"),
    "socks5://u:***@proxy:1080: only http:// proxies are supported (HTTP CONNECT over plain TCP), not socks5://",
  );
  assert.equal(redactUrl("http://user:secret@h:3128"), "http://user:***@h:3128");
  assert.equal(redactUrl("http://h:3128"), "http://h:3128");
  assert.equal(redactUrl("http://u:p@ss@h:3128"), "http://u:***@h:3128");
  assert.equal(redactUrl("http://u:pa/ss@h:3128"), "http://u:***@h:3128");
  assert.equal(redactUrl("u:secret@h:3128"), "u:***@h:3128");
  assert.equal(redactUrl("http://u/x:secret@h"), "http://***@h");
});

test("standard variables: lower case wins, upper-case HTTP_PROXY is ignored (httpoxy), credentials stay out", () => {
  assert.deepEqual(
    standardProxyEnv({
      https_proxy: "http://lower:3128",
      HTTPS_PROXY: "http://upper:3128",
      HTTP_PROXY: "http://ignored:3128",
      NO_PROXY: "a.lab, .b.lab,10.0.0.0/8 not/valid",
    }),
    {
      "proxy.https": { value: "http://lower:3128", variable: "https_proxy" },
      "proxy.noProxy": { value: ["a.lab", ".b.lab", "10.0.0.0/8"], variable: "NO_PROXY" },
    },
  );
  assert.deepEqual(standardProxyEnv({ HTTPS_PROXY: "http://u:pw@upper:3128", http_proxy: "" }), {
    "proxy.https": { value: "http://upper:3128", variable: "HTTPS_PROXY", hadCredentials: true },
  });
  // Unusable: an error for a run that contacts a CA (test below), not for `status`.
  assert.deepEqual(standardProxyEnv({ https_proxy: "https://u:pw@tls-proxy:443" }), {
    "proxy.https": {
      value: "",
      variable: "https_proxy",
      unusable:
        "environment variable https_proxy: https://u:***@tls-proxy:443: only http:// proxies are supported (HTTP CONNECT over plain TCP), not https://",
    },
  });
});

test("precedence: flags > NODE_JOIN_* > https_proxy... > config file", () => {
  const root = tempRoot("nj-proxy-unit-");
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  writeFileSync(
    join(root, "etc/node-join/config.yaml"),
    "proxy:\n  https: http://file:3128\n  http: http://file:3128\n  noProxy: [file.lab]\n",
  );
  const std = {
    https_proxy: "http://std:3128",
    http_proxy: "http://std:3128",
    no_proxy: "std.lab",
  };
  const load = (opts: Record<string, unknown>, env: NodeJS.ProcessEnv) =>
    loadSettings({ root, ...opts }, env).settings.proxy;
  assert.deepEqual(load({}, {}), {
    https: "http://file:3128",
    http: "http://file:3128",
    noProxy: ["file.lab"],
  });
  assert.deepEqual(load({}, std), {
    https: "http://std:3128",
    http: "http://std:3128",
    noProxy: ["std.lab"],
  });
  const nj = { ...std, NODE_JOIN_HTTPS_PROXY: "http://nj:3128", NODE_JOIN_NOPROXY: "nj.lab" };
  assert.deepEqual(load({}, nj), {
    https: "http://nj:3128",
    http: "http://std:3128",
    noProxy: ["nj.lab"],
  });
  assert.deepEqual(load({ httpsProxy: "http://flag:3128" }, nj), {
    https: "http://flag:3128",
    http: "http://std:3128",
    noProxy: ["nj.lab"],
  });
  // What join persists and says it took from the standard variables: only what nothing overrode.
  assert.deepEqual(Object.keys(loadSettings({ root }, nj).fromStandardEnv), ["proxy.http"]);
});

test("credentials: NODE_JOIN_PROXY_CREDENTIALS > the credentials file > the variable's URL; Basic", () => {
  const root = tempRoot("nj-proxy-unit-");
  const file = join(root, "creds");
  writeFileSync(file, "filer:from-file\n");
  chmodSync(file, 0o600);
  const route = (env: NodeJS.ProcessEnv, credentialsFile?: string) =>
    readProxyConfig(
      { https: "http://p:3128", noProxy: [], ...(credentialsFile ? { credentialsFile } : {}) },
      env,
    )!.https!;
  const basic = (s: string) => `Basic ${Buffer.from(s).toString("base64")}`;
  assert.deepEqual(route({ https_proxy: "http://envuser:envpw@p:3128" }), {
    url: "http://p:3128",
    host: "p",
    port: 3128,
    authorization: basic("envuser:envpw"),
    credentialsSource: "https_proxy",
  });
  // Another proxy in the variable: its credentials are not sent to this one.
  assert.equal(route({ https_proxy: "http://envuser:envpw@other:3128" }).authorization, undefined);
  assert.equal(route({}, file).credentialsSource, file);
  assert.equal(route({}, file).authorization, basic("filer:from-file"));
  const e = route({ NODE_JOIN_PROXY_CREDENTIALS: "v:w:x" }, file);
  assert.equal(e.authorization, basic("v:w:x"));
  assert.equal(e.credentialsSource, "NODE_JOIN_PROXY_CREDENTIALS");
  assert.equal(readProxyConfig({ noProxy: [] }, {}), undefined);
  // No credentials: a direct route for a NO_PROXY host.
  const cfg = readProxyConfig({ https: "http://p:3128", noProxy: ["ca.lab"] }, {});
  assert.equal(proxyRouteFor(new URL("https://ca.lab:9000/x"), cfg), undefined);
  assert.equal(proxyRouteFor(new URL("https://ca2.lab:9000/x"), cfg)?.url, "http://p:3128");
  assert.equal(proxyRouteFor(new URL("http://ca2.lab:8888/x"), cfg), undefined);
});

const JOIN = [
  "join",
  "--api-server",
  "https://10.0.0.1:6443",
  "--ca-url",
  "http://127.0.0.1:1",
  "--ca-cert-hash",
  `sha256:${"ab".repeat(32)}`,
  "--node-name",
  "w1",
  "--ip",
  "10.0.0.21",
];

test("CLI: a proxy setting it cannot use is exit 2 naming it, the password never shown", async () => {
  const cases: [string[], NodeJS.ProcessEnv, string][] = [
    [
      ["--https-proxy", "http://u:hunter2@p:3128"],
      {},
      "node-join: error: --https-proxy: http://u:***@p:3128 carries credentials: give them in a file (--proxy-credentials-file, config key proxy.credentialsFile) or NODE_JOIN_PROXY_CREDENTIALS\n",
    ],
    [
      [],
      { NODE_JOIN_HTTP_PROXY: "p:3128" },
      "node-join: error: environment variable NODE_JOIN_HTTP_PROXY: is not a URL: did you mean http://p:3128?\n",
    ],
    [
      ["--noproxy", "bad host"],
      {},
      'node-join: error: --noproxy: "bad host" is not a host name, domain, IP address or CIDR range (with an optional :port), nor *\n',
    ],
    [
      [],
      { http_proxy: "socks5h://u:hunter2@p:1080" },
      "node-join: error: environment variable http_proxy: socks5h://u:***@p:1080: only http:// proxies are supported (HTTP CONNECT over plain TCP), not socks5h://\n",
    ],
    [
      [],
      { http_proxy: "http://p:3128", NODE_JOIN_PROXY_CREDENTIALS: "hunter2" },
      "node-join: error: NODE_JOIN_PROXY_CREDENTIALS is not user:password\n",
    ],
  ];
  for (const [flags, env, want] of cases) {
    const root = tempRoot("nj-proxy-unit-");
    const r = await runMain([...JOIN, "--root", root, ...flags], env);
    assert.equal(r.stderr, want, JSON.stringify({ flags, env }));
    assert.equal(r.code, 2);
  }
});

test("CLI: an unusable proxy in the standard variables stops only a run that contacts a CA", async () => {
  const root = tempRoot("nj-proxy-unit-");
  const env = { https_proxy: "socks5://p:1080" };
  const status = await runMain(["status", "--root", root], env);
  assert.equal(status.code, 9, status.stderr);
  // A flag that names another proxy overrides it.
  const r = await runMain(
    [...JOIN, "--root", root, "--https-proxy", "http://127.0.0.1:1", "--timeout", "1s"],
    env,
    // The retries wait on a clock that sleeping advances: the same attempts, at once.
    { clock: fakeClock() },
  );
  assert.equal(r.code, 3, r.stderr);
});

test("CLI: the proxy credentials file is checked like the auth keys, before any request", async () => {
  const root = tempRoot("nj-proxy-unit-");
  const file = join(root, "proxy-creds");
  writeFileSync(file, "u:hunter2\n");
  chmodSync(file, 0o644);
  const joinWith = (credentialsFile: string) =>
    runMain(
      [
        ...JOIN,
        "--root",
        root,
        "--http-proxy",
        "http://127.0.0.1:1",
        "--proxy-credentials-file",
        credentialsFile,
      ],
      {},
    );
  const r = await joinWith(file);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr,
    `node-join: error: proxy credentials file ${file} is readable by group or others (mode 0644); fix with: chmod 600 ${file}\n`,
  );
  assert.ok(!r.stderr.includes("hunter2"));
  const missing = await joinWith(`${file}.x`);
  assert.equal(
    missing.stderr,
    `node-join: error: proxy credentials file ${file}.x does not exist (--proxy-credentials-file, config proxy.credentialsFile)\n`,
  );
  assert.equal(missing.code, 2);
});

test("CLI: a proxy URL without a scheme is refused with its password as *** from a flag, a variable and the config, on stderr and in --json", async () => {
  const password = "Pr0xyPa55w0rd";
  const bare = `proxyuser:${password}@proxy.lab:3128`;
  const said = "is not a URL: did you mean http://proxyuser:***@proxy.lab:3128?";
  const sources: [string, (root: string) => { flags: string[]; env: NodeJS.ProcessEnv }][] = [
    ["--https-proxy", () => ({ flags: ["--https-proxy", bare], env: {} })],
    ["--http-proxy", () => ({ flags: ["--http-proxy", bare], env: {} })],
    [
      "environment variable NODE_JOIN_HTTPS_PROXY",
      () => ({ flags: [], env: { NODE_JOIN_HTTPS_PROXY: bare } }),
    ],
    [
      "environment variable NODE_JOIN_HTTP_PROXY",
      () => ({ flags: [], env: { NODE_JOIN_HTTP_PROXY: bare } }),
    ],
    [
      "config key proxy.https",
      (root) => {
        const config = join(root, "etc/node-join/config.yaml");
        mkdirSync(join(root, "etc/node-join"), { recursive: true });
        writeFileSync(config, `proxy:\n  https: ${bare}\n`);
        return { flags: [], env: {} };
      },
    ],
  ];
  for (const [where, given] of sources) {
    for (const json of [false, true]) {
      const root = tempRoot("nj-proxy-unit-");
      const { flags, env } = given(root);
      const r = await runMain(
        [...JOIN, "--root", root, ...flags, ...(json ? ["--json"] : [])],
        env,
      );
      const prefix = where.startsWith("config")
        ? `config ${join(root, "etc/node-join/config.yaml")}: `
        : "";
      const message = `${prefix}${where}: ${said}`;
      assert.equal(r.code, 2, `${where}: ${r.stderr}`);
      assert.equal(r.stderr, `node-join: error: ${message}\n`, where);
      if (json)
        assert.equal(r.stdout, `${JSON.stringify({ ok: false, exitCode: 2, error: message })}\n`);
      for (const out of [r.stdout, r.stderr]) {
        assert.ok(!out.includes(password), `${where}: the password is not shown`);
        if (out !== "") assert.ok(out.includes("proxyuser:***@"), `${where}: *** instead`);
      }
    }
  }
});
