// The servers of one CA (agent/ca/common.ts CaServers, retrying): asked in order starting with the
// one that last answered; a connection failure or 5xx moves on, a refusal or an impostor stops at
// once; a pass over all of them is one backoff step until the deadline. On the test's clock, with
// attempts that stand in for the HTTP requests.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RuntimeSeams } from "../../agent/cli/context.js";
import { CaServers, retrying } from "../../agent/ca/common.js";
import { toSettings } from "../../agent/config/settings.js";
import { envValues, parseConfigText, renderConfig } from "../../agent/config/sources.js";
import { TransientError } from "../../agent/ca/retry.js";
import {
  CaRefusedError,
  CaUnreachableError,
  VerificationError,
} from "../../agent/common/errors.js";
import { FakeCa, fakeClock } from "../helpers/fake-ca.js";
import { tempRoot } from "../helpers/fs.js";
import { cli } from "../helpers/joined.js";

const A = "http://a:8888";
const B = "http://b:8888/";
const C = "http://c:8888";

const name = (server?: string) => `CA kubernetes (cfssl${server ? ` ${server}` : ""})`;

function setup(urls = [A, B, C], preferred?: string) {
  const clock = fakeClock(0);
  const log: string[] = [];
  const asked: string[] = [];
  const ctx = { clock, deadline: 10_000, log: (l: string) => log.push(l) };
  return { clock, log, asked, ctx, servers: new CaServers(urls, preferred, name) };
}

test("the servers are asked in their order, starting with the one that answered last", () => {
  assert.deepEqual(new CaServers([A, B, C], undefined, name).order(), [A, B, C]);
  assert.deepEqual(new CaServers([A, B, C], C, name).order(), [C, A, B]);
  // A remembered URL the operator has since removed is ignored.
  assert.deepEqual(new CaServers([A, B], C, name).order(), [A, B]);
  const one = new CaServers([B], undefined, name);
  assert.equal(one.whole, "CA kubernetes (cfssl http://b:8888)");
  assert.equal(new CaServers([A, B], undefined, name).whole, "CA kubernetes (cfssl)");
});

test("an unreachable server and a 5xx move on to the next; the one that answered is asked first from then on", async () => {
  const { ctx, servers, asked, log } = setup();
  const answer = await retrying(ctx, servers, async (url) => {
    asked.push(url);
    if (url === A) throw new TransientError("connection refused (ECONNREFUSED)");
    if (url === B) throw new TransientError("HTTP 503");
    return "signed";
  });
  assert.equal(answer, "signed");
  assert.deepEqual(asked, [A, B, C]);
  assert.deepEqual(log, [
    "CA kubernetes (cfssl http://a:8888): connection refused (ECONNREFUSED); trying http://b:8888",
    "CA kubernetes (cfssl http://b:8888): HTTP 503; trying http://c:8888",
  ]);
  assert.equal(servers.answered(), C);
  assert.equal(servers.description, "CA kubernetes (cfssl http://c:8888)");

  asked.length = 0;
  await retrying(ctx, servers, async (url) => {
    asked.push(url);
    return "again";
  });
  assert.deepEqual(asked, [C], "the next request starts with the server that answered");
});

test("a refusal or an impostor ends the request at once: the other servers are not asked", async () => {
  for (const err of [
    new CaRefusedError(
      "CA kubernetes (cfssl http://a:8888) signing kubelet refused: invalid token",
    ),
    new VerificationError("CA kubernetes (cfssl http://a:8888): CA certificate pin mismatch"),
  ]) {
    const { ctx, servers, asked, log } = setup();
    await assert.rejects(
      retrying(ctx, servers, async (url) => {
        asked.push(url);
        throw err;
      }),
      (e) => e === err,
    );
    assert.deepEqual(asked, [A]);
    assert.deepEqual(log, []);
    assert.equal(servers.answered(), undefined);
  }
});

test("a failed pass over every server is one backoff step; at the deadline the error names each server", async () => {
  const { ctx, servers, asked, log, clock } = setup([A, B]);
  const err = await retrying(ctx, servers, async (url) => {
    asked.push(url);
    throw new TransientError(url === A ? "connection refused (ECONNREFUSED)" : "HTTP 503");
  }).catch((e: unknown) => e);
  assert.ok(err instanceof CaUnreachableError);
  assert.equal(
    err.message,
    "CA kubernetes (cfssl) unreachable: http://a:8888 connection refused (ECONNREFUSED); http://b:8888 HTTP 503",
  );
  assert.equal(clock.now(), 10_000, "retried until the deadline");
  const passes = asked.length / 2;
  assert.deepEqual(asked, Array.from({ length: passes }, () => [A, B]).flat());
  const retries = log.filter((l) => /attempt \d+ failed/.test(l));
  assert.equal(
    retries.length,
    passes,
    "one backoff step per pass (the last one sleeps to the deadline)",
  );
  assert.match(
    retries[0]!,
    /^CA kubernetes \(cfssl\): attempt 1 failed \(http:\/\/a:8888 connection refused \(ECONNREFUSED\); http:\/\/b:8888 HTTP 503\); retrying in \d+\.\ds$/,
  );
});

test("a pass the deadline cuts short still names every server, by its last failure", async () => {
  const { ctx, servers, asked, clock } = setup([A, B]);
  await assert.rejects(
    retrying(ctx, servers, async (url) => {
      asked.push(url);
      // The first pass fails at once; in the second, the first server hangs until the deadline.
      if (asked.length > 2) clock.advance(20_000);
      throw new TransientError(url === A ? "no complete answer within 30s" : "HTTP 503");
    }),
    {
      name: "CaUnreachableError",
      message:
        "CA kubernetes (cfssl) unreachable: http://a:8888 no complete answer within 30s; http://b:8888 HTTP 503",
    },
  );
  assert.deepEqual(asked, [A, B, A], "the second server is not asked after the deadline");
});

test("one server: its error unchanged, as before there could be several", async () => {
  const { ctx, servers } = setup([A]);
  await assert.rejects(
    retrying(ctx, servers, async () => {
      throw new TransientError("connection refused (ECONNREFUSED)");
    }),
    {
      name: "CaUnreachableError",
      message: "CA kubernetes (cfssl http://a:8888) unreachable: connection refused (ECONNREFUSED)",
    },
  );
});

test("join remembers the server that answered in the state file, renew asks it first; the config keeps the list", async () => {
  const root = tempRoot("nj-urls-");
  const clock = fakeClock();
  const cas = await FakeCa.forEveryCa(clock);
  const preferred: (string | undefined)[] = [];
  const seams: RuntimeSeams = {
    clock,
    backend: (ctx) => {
      preferred.push(ctx.preferredUrl);
      const fake = cas[ctx.ca.name];
      // The fake stands in for the CA at its second server, as if the first had been down.
      return Object.assign(Object.create(fake) as FakeCa, { answered: () => ctx.settings.urls[1] });
    },
  };
  const A = "http://ca-a.invalid:8888";
  const B = "http://ca-b.invalid:8888";
  const r = await cli(
    [
      ...["join", "--root", root, "--api-server", "https://10.0.0.1:6443"],
      ...["--ca-url", A, "--ca-url", B, "--ca-cert-hash", `sha256:${"ab".repeat(32)}`],
      ...["--node-name", "w1", "--ip", "10.0.0.21", "--no-timer"],
    ],
    seams,
  );
  assert.equal(r.code, 0, r.stderr);
  const state = JSON.parse(readFileSync(join(root, "var/lib/node-join/state.json"), "utf8")) as {
    caUrls?: Record<string, string>;
  };
  assert.deepEqual(state.caUrls, { kubernetes: B });
  assert.match(
    readFileSync(join(root, "etc/node-join/config.yaml"), "utf8"),
    /^ {4}url:\n {6}- http:\/\/ca-a\.invalid:8888\n {6}- http:\/\/ca-b\.invalid:8888\n/m,
  );
  assert.deepEqual(preferred, [undefined], "nothing remembered before the first join");

  const renewed = await cli(["renew", "--root", root, "--force"], seams);
  assert.equal(renewed.code, 0, renewed.stderr);
  assert.deepEqual(preferred, [undefined, B]);
});

test("--ca-url repeats, NODE_JOIN_CA_URL is comma-separated, a config key takes one URL or a list; every URL is checked", async () => {
  const file = (url: string) =>
    toSettings(parseConfigText(`cas:\n  kubernetes:\n    url: ${url}\n`, "c.yaml"), "/");
  assert.deepEqual(file("http://a:8888").cas.kubernetes.urls, ["http://a:8888"]);
  assert.deepEqual(file("[http://a:8888, http://b:8888]").cas.kubernetes.urls, [
    "http://a:8888",
    "http://b:8888",
  ]);
  const env = toSettings(envValues({ NODE_JOIN_CA_URL: "http://a:8888, http://b:8888" }), "/");
  assert.deepEqual(env.cas.kubernetes.urls, ["http://a:8888", "http://b:8888"]);
  // The front-proxy and etcd CAs on the same servers take the whole list.
  assert.deepEqual(env.cas.etcd.urls, ["http://a:8888", "http://b:8888"]);
  // Persisted as written before the key became a list while it holds one URL.
  const one = renderConfig(new Map([["cas.kubernetes.url", ["http://a:8888"]]]), "/");
  assert.match(one, /^ {4}url: http:\/\/a:8888$/m);

  const join_ = ["join", "--root", tempRoot("nj-urls-"), "--api-server", "https://10.0.0.1:6443"];
  for (const [urls, line] of [
    [
      ["http://a:8888", "ca.b:8888"],
      'node-join: error: --ca-url: "ca.b:8888" is not a URL: did you mean http://ca.b:8888 or https://ca.b:8888?\n',
    ],
    [
      ["http://a:8888", "http://a:8888"],
      'node-join: error: --ca-url: "http://a:8888" is given twice\n',
    ],
    [
      ["http://a:8888,http://b:8888"],
      'node-join: error: --ca-url: "http://a:8888,http://b:8888": one value per flag: repeat --ca-url for each\n',
    ],
  ] as const) {
    const r = await cli([...join_, ...urls.flatMap((u) => ["--ca-url", u])]);
    assert.deepEqual([r.code, r.stderr], [2, line]);
  }
});

test("renew on a config that lost its CA URL: exit 2 naming the flag and the key", async () => {
  const root = tempRoot("nj-urls-");
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  writeFileSync(
    join(root, "etc/node-join/config.yaml"),
    "apiServer: https://10.0.0.1:6443\nnodeName: w1\nips: [10.0.0.21]\n" +
      `cas:\n  kubernetes:\n    certHashes: [sha256:${"ab".repeat(32)}]\n`,
  );
  const r = await cli(["renew", "--root", root, "--force"]);
  assert.deepEqual(
    [r.code, r.stderr],
    [
      2,
      "node-join: error: CA kubernetes: no server URL: give --ca-url, config cas.kubernetes.url\n",
    ],
  );
});
