// What a renewal takes from the host and gives to it, in process: the metrics textfile is read
// without following links, blocking or reading without bound (the collector directory is often
// another user's), and the post-renew hooks never see a secret.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { secretEnvNames, withoutSecrets } from "../../agent/ca/index.js";
import { secretEnvName } from "../../agent/ca/secrets.js";
import { LocalIoError } from "../../agent/common/errors.js";
import { hookEnv, runHooks } from "../../agent/ops/hooks.js";
import { refreshMetrics, TEXTFILE_MAX_BYTES } from "../../agent/ops/metrics.js";
import { CA_NAMES, CAS } from "../../agent/pki/cas.js";
import { deadlinePolicy } from "../../agent/pki/deadline.js";
import { layout } from "../../agent/store/layout.js";
import { readRegularFileBounded } from "../../agent/store/safe-read.js";
import { REPO } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";

/** The secrets agent/ca/ reads: every `secretEnvName(…, "NAME")` in its sources, folders too. */
function secretsTheBackendsRead(): string[] {
  const dir = join(REPO, "agent/ca");
  const names = new Set<string>();
  for (const f of readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((n) =>
    n.endsWith(".ts"),
  ))
    for (const m of readFileSync(join(dir, f), "utf8").matchAll(
      /secretEnvName\(\s*[\w.]+\s*,\s*"([A-Z_]+)"\s*\)/g,
    ))
      names.add(m[1]!);
  return [...names];
}

test("the hook environment holds none of the variables a CA secret is read from", () => {
  const read = secretsTheBackendsRead();
  assert.deepEqual([...read].sort(), ["AUTH_KEY", "PASSWORD", "TOKEN"], "what agent/ca/ reads");
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/bin:/bin",
    NODE_JOIN_CA_AUTH_KEY_FILE: "/etc/node-join/ca-auth.key",
    NODE_JOIN_DEBUG: "1",
    NODE_JOIN_SOME_FUTURE_CA_TOKEN: "t0",
  };
  for (const ca of CA_NAMES)
    for (const secret of read) env[secretEnvName(CAS[ca], secret)] = `secret-${ca}-${secret}`;
  const out = hookEnv(withoutSecrets(env), ["kubelet-client", "kubelet-server"], "/");
  for (const name of [...secretEnvNames(), "NODE_JOIN_SOME_FUTURE_CA_TOKEN"])
    assert.ok(!(name in out), `${name} removed`);
  assert.ok(!Object.values(out).some((v) => v?.startsWith("secret-")), "no secret value left");
  assert.equal(out.PATH, "/usr/bin:/bin");
  assert.equal(out.NODE_JOIN_CA_AUTH_KEY_FILE, "/etc/node-join/ca-auth.key", "a path is no secret");
  assert.equal(out.NODE_JOIN_DEBUG, "1");
  assert.equal(out.NODE_JOIN_RENEWED, "kubelet-client,kubelet-server");
  assert.equal(out.NODE_JOIN_ROOT, "/");
  assert.equal(env.NODE_JOIN_CA_AUTH_KEY, "secret-kubernetes-AUTH_KEY", "the run's own is kept");
});

/** What a hook that dumps its environment saw, run by runHooks as renew and leave run it. */
function hookSaw(env: NodeJS.ProcessEnv): string {
  const root = tempRoot("nj-hooks-");
  const dump = join(root, "env.txt");
  const hook = ["/bin/sh", "-c", `env > '${dump}'`];
  runHooks([hook], ["kubelet-client"], withoutSecrets(env), root, () => undefined);
  return readFileSync(dump, "utf8");
}

test("a hook run by runHooks sees no secret in its environment", () => {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  for (const name of secretEnvNames()) env[name] = `s3cret-${name}`;
  const seen = hookSaw(env);
  assert.doesNotMatch(seen, /s3cret-/);
  assert.match(seen, /^NODE_JOIN_RENEWED=kubelet-client$/m);
});

test("a hook sees the proxy variables without their credentials, and no NODE_JOIN_PROXY_CREDENTIALS", () => {
  const password = "Pr0xyPa55w0rd";
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    NODE_JOIN_PROXY_CREDENTIALS: `proxyuser:${password}`,
    https_proxy: `http://proxyuser:${password}@proxy.lab:3128`,
    HTTPS_PROXY: `http://proxyuser:${password}@proxy.lab:3128/`,
    http_proxy: `proxyuser:${password}@proxy.lab:3128`,
    HTTP_PROXY: `http://proxyuser:${password}@proxy.lab:3128`,
    ALL_PROXY: `http://proxyuser:p@ss/${password}@proxy.lab:3128`,
    all_proxy: `http://proxyuser:${password}@proxy.lab:3128`,
    no_proxy: "ca.lab",
    NODE_JOIN_HTTPS_PROXY: "http://proxy.lab:3128",
  };
  const seen = hookSaw(env);
  assert.ok(!seen.includes(password), "no proxy password");
  assert.doesNotMatch(seen, /^NODE_JOIN_PROXY_CREDENTIALS=/m);
  assert.doesNotMatch(seen, /proxyuser/, "nor the proxy's user");
  // The proxy itself is kept: a hook's own tools may need it.
  for (const name of ["https_proxy", "HTTP_PROXY", "ALL_PROXY", "all_proxy"])
    assert.match(seen, new RegExp(`^${name}=http://proxy\\.lab:3128$`, "m"), name);
  assert.match(seen, /^HTTPS_PROXY=http:\/\/proxy\.lab:3128\/$/m);
  assert.match(seen, /^http_proxy=proxy\.lab:3128$/m);
  assert.match(seen, /^no_proxy=ca\.lab$/m);
  assert.match(seen, /^NODE_JOIN_HTTPS_PROXY=http:\/\/proxy\.lab:3128$/m);
  assert.equal(env.NODE_JOIN_PROXY_CREDENTIALS, `proxyuser:${password}`, "the run's own is kept");
});

test("readRegularFileBounded: a regular file within the bound; nothing; and refusals that do not block", () => {
  const dir = tempRoot("nj-saferead-");
  const file = join(dir, "f");
  writeFileSync(file, "abc");
  assert.equal(readRegularFileBounded(file, 3)?.toString(), "abc");
  assert.equal(readRegularFileBounded(join(dir, "missing"), 3), undefined);
  const refused = (path: string, why: RegExp) =>
    assert.throws(
      () => readRegularFileBounded(path, 3),
      (e: unknown) => e instanceof LocalIoError && e.exitCode === 6 && why.test(e.message),
    );
  refused(file.replace(/f$/, ""), /is a directory/);
  writeFileSync(join(dir, "big"), "abcd");
  refused(join(dir, "big"), /4 bytes, more than 3/);
  symlinkSync(file, join(dir, "link"));
  refused(join(dir, "link"), /is a symbolic link/);
  symlinkSync("/dev/zero", join(dir, "zero"));
  refused(join(dir, "zero"), /is a symbolic link/);
  assert.equal(spawnSync("mkfifo", [join(dir, "fifo")]).status, 0, "mkfifo");
  refused(join(dir, "fifo"), /is a FIFO, not a regular file/); // returns: no writer needed
});

test("refreshMetrics neither follows a planted link nor reads a huge file: it warns and writes a fresh regular file", () => {
  const root = tempRoot("nj-metrics-");
  const dir = join(root, "collector");
  mkdirSync(dir);
  const textfile = join(dir, "node_join.prom");
  const refresh = (logs: string[]) =>
    refreshMetrics(
      {
        textfile,
        layout: layout(root),
        read: () => [],
        readCas: () => [],
        policy: deadlinePolicy("w1", {}),
        run: { command: "renew", success: true, time: new Date(1_700_000_000_000) },
      },
      (l) => logs.push(l),
    );
  // a link to a file the exporter user cannot read, holding a sample that would be carried over
  const elsewhere = join(root, "elsewhere.prom");
  const planted = 'node_join_last_run_success{command="planted"} 1\n';
  writeFileSync(elsewhere, planted);
  symlinkSync(elsewhere, textfile);
  const logs: string[] = [];
  refresh(logs);
  assert.ok(lstatSync(textfile).isFile(), "the link is replaced by a regular file");
  assert.doesNotMatch(readFileSync(textfile, "utf8"), /planted/, "the link was not followed");
  assert.equal(readFileSync(elsewhere, "utf8"), planted, "its target is untouched");
  assert.match(logs.join("\n"), /^warning: metrics textfile: not reading .* symbolic link/m);
  assert.match(
    readFileSync(textfile, "utf8"),
    /^node_join_last_run_success\{command="renew"\} 1$/m,
  );

  // larger than any textfile node-join writes (sparse: no disk used)
  writeFileSync(textfile, planted);
  truncateSync(textfile, TEXTFILE_MAX_BYTES + 1);
  const big: string[] = [];
  refresh(big);
  assert.match(big.join("\n"), /not reading .*: 1048577 bytes, more than 1048576/);
  assert.doesNotMatch(readFileSync(textfile, "utf8"), /planted/);
});
