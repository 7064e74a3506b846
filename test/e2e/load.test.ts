// 200 nodes joining at once against one real CFSSL on loopback: the agent's join function
// in-process with separate roots (200 processes of ~70 MiB each would mostly measure Node
// start-up).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { runJoin } from "../../agent/cli/join.js";
import { toSettings } from "../../agent/config/settings.js";
import { flagValues, mergeValues } from "../../agent/config/sources.js";
import { layout } from "../../agent/store/layout.js";
import { systemClock } from "../../agent/common/clock.js";
import { useCfssl } from "../helpers/cfssl.js";
import { tempRoot } from "../helpers/fs.js";

const NODES = 200;
/** Retries a node may need under this load before it counts as a failure of the backoff. */
const RETRY_BUDGET = 3;

const ca = useCfssl();

test(`${NODES} nodes join at once: all succeed within their retry budget`, async () => {
  const base = tempRoot("nj-load-");
  const signsBefore = ca.signRequests();
  const retries: number[] = [];
  const t0 = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: NODES }, async (_, i) => {
      const root = join(base, `node-${i}`);
      mkdirSync(join(root, "etc/node-join"), { recursive: true });
      const values = mergeValues(
        flagValues({
          apiServer: "https://10.0.0.1:6443",
          caUrl: ca.url,
          caCertHash: [ca.pin],
          clientProfile: "client",
          servingProfile: "serving",
          nodeName: `node-${i}`,
          ip: [`10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`],
        }),
      );
      let n = 0;
      const r = await runJoin(
        { settings: toSettings(values, root), values, force: false, dryRun: false },
        {
          layout: layout(root),
          env: { NODE_JOIN_CA_AUTH_KEY: ca.authKeyHex },
          clock: systemClock,
          log: (line) => (/attempt \d+ failed/.test(line) ? n++ : undefined),
        },
      );
      retries[i] = n;
      return r;
    }),
  );
  const wallMs = performance.now() - t0;
  const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
  assert.deepEqual(
    failed.map((f) => String(f.reason)),
    [],
    "every node joined",
  );
  assert.ok(results.every((r) => r.status === "fulfilled" && r.value.issued.length === 2));
  const signs = ca.signRequests() - signsBefore;
  const maxRetries = Math.max(0, ...retries);
  console.error(
    `# load: ${NODES} nodes joined in ${(wallMs / 1000).toFixed(1)} s; CA sign requests ${signs} (${(signs / NODES).toFixed(2)} per node); retries: max ${maxRetries}, total ${retries.reduce((a, b) => a + b, 0)}`,
  );
  assert.ok(maxRetries <= RETRY_BUDGET, `a node needed ${maxRetries} retries`);
  assert.ok(signs >= NODES * 2, `the CA saw ${signs} sign requests`);
});
