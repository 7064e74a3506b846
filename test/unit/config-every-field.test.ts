// Every setting of the options table, given a value of the wrong type or an invalid value, is a
// usage error (exit 2) that names the key, from the config file, the environment and the flag.
import { test } from "node:test";
import assert from "node:assert/strict";
import YAML from "yaml";
import {
  envName,
  camel,
  ALL_OPTIONS as OPTIONS,
  type OptionSpec,
} from "../../agent/config/options.js";
import { envValues, flagValues, parseConfigText } from "../../agent/config/sources.js";
import { UsageError } from "../../agent/common/errors.js";
import { BACKENDS, CA_TYPES } from "../../agent/ca/index.js";

/** Values a config file may not hold for this option. */
function wrongFileValues(o: OptionSpec): unknown[] {
  const bad: Record<OptionSpec["type"], unknown[]> = {
    string: [42, true, ["a"], { a: 1 }, ""],
    list: ["a-string", 7, [1, 2], { a: 1 }],
    bool: ["yes", 1, ["true"]],
    duration: ["soon", 5, "5 minutes", "-1h"],
    int: ["6443", 1.5, true],
    argvs: ["systemctl restart kubelet", [["ok"], "not-a-list"], [[]], [[1]]],
  };
  const values = [...bad[o.type]];
  if (o.choices) values.push("not-a-choice");
  return values;
}

function nest(key: string, value: unknown): string {
  const doc: Record<string, unknown> = {};
  let node = doc;
  const parts = key.split(".");
  for (const p of parts.slice(0, -1)) node = (node[p] = {}) as Record<string, unknown>;
  node[parts[parts.length - 1]!] = value;
  return YAML.stringify(doc);
}

test("every config key rejects wrong types and values, naming the key (exit 2)", () => {
  let cases = 0;
  for (const o of OPTIONS) {
    for (const v of wrongFileValues(o)) {
      const text = nest(o.key, v);
      assert.throws(
        () => parseConfigText(text, "/etc/node-join/config.yaml"),
        (err: unknown) =>
          err instanceof UsageError &&
          err.exitCode === 2 &&
          err.message.includes(`config key ${o.key}:`) &&
          err.message.includes("/etc/node-join/config.yaml"),
        `${o.key} = ${JSON.stringify(v)} must be refused`,
      );
      cases++;
    }
  }
  assert.ok(cases > 150, `${cases} cases`);
});

test("every key with a check refuses a bad value from the environment and the flag too", () => {
  const samples: Record<string, string> = {
    url: "not a url",
    certHashes: "sha256:xyz",
    ips: "10.0.0.999",
    dnsNames: "bad_name!",
    apiServer: "http://plain:6443",
    nodeName: "Bad_Name",
    advertiseAddress: "nope",
    bindPort: "70000",
    serviceCidr: "10.96.0.0/99",
    dnsDomain: "bad domain",
    timeout: "soon",
    before: "later",
    keyAlgorithm: "dsa",
    role: "master",
    type: "vault",
    fingerprint: "abc",
  };
  let cases = 0;
  for (const o of OPTIONS) {
    const flag = o.flag;
    if (!flag) continue;
    const last = o.key.split(".").pop()!;
    const value =
      samples[last] ??
      (o.type === "duration"
        ? "soon"
        : o.type === "int"
          ? "x"
          : o.type === "bool"
            ? "maybe"
            : undefined);
    if (value === undefined) continue;
    assert.throws(
      () => envValues({ [envName(flag)]: value }),
      (e: unknown) => e instanceof UsageError && e.message.includes(envName(flag)),
      `${envName(flag)}=${value}`,
    );
    const flagValue = o.type === "list" ? [value] : value;
    assert.throws(
      () => flagValues({ [camel(flag)]: flagValue }),
      (e: unknown) => e instanceof UsageError && e.message.includes(`--${flag}`),
      `--${flag} ${value}`,
    );
    cases++;
  }
  assert.ok(cases >= 25, `${cases} cases`);
});

test("the CA types accepted by the config are exactly the registered backends", () => {
  assert.deepEqual([...CA_TYPES].sort(), Object.keys(BACKENDS).sort());
});

test("unknown keys are rejected at every level", () => {
  for (const text of [
    "colour: blue",
    "cas:\n  kubernetes:\n    urll: http://x",
    "controlPlane:\n  endpiont: x:6443",
    "renew:\n  beforee: 1h",
    "cas:\n  vault:\n    url: http://x",
  ]) {
    assert.throws(() => parseConfigText(text, "c.yaml"), /unknown key/, text);
  }
});
