// Each CA backend owns its settings (ca/index.ts registry): its options become flags, variables and
// config keys of every CA, its secrets are the options it declares secret, and a CA's settings
// hold its own backend's fields only.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BACKENDS,
  backendOptions,
  CA_TYPES,
  distinctOptions,
  droppableSecretFiles,
  secretEnvNames,
  secretEnvSuffixes,
} from "../../agent/ca/index.js";
import { envName, optionByKey } from "../../agent/config/options.js";
import { flagValues, mergeValues } from "../../agent/config/sources.js";
import { toSettings } from "../../agent/config/settings.js";
import { CA_NAMES, CAS } from "../../agent/pki/cas.js";
import { cfsslOf, stepCaOf } from "../helpers/ca-settings.js";

test("every backend's option is an option of each CA: its prefixed flag, NODE_JOIN_ variable and config key", () => {
  assert.deepEqual(CA_TYPES, ["cfssl", "step-ca"]);
  for (const o of backendOptions())
    for (const ca of CA_NAMES) {
      const spec = optionByKey(`cas.${ca}.${o.field}`);
      assert.ok(spec, `cas.${ca}.${o.field}`);
      assert.equal(spec.flag, `${CAS[ca].flagPrefix}${o.flag}`);
      assert.equal(spec.path ?? false, o.kind === "path", spec.key);
      assert.equal(spec.description, `${CAS[ca].title}: ${o.description}`);
    }
  assert.equal(envName(optionByKey("cas.etcd.tokenFile")!.flag!), "NODE_JOIN_ETCD_CA_TOKEN_FILE");
});

test("two backends cannot declare the same field or flag: they would share a setting", () => {
  const [cfssl, step] = [BACKENDS.cfssl.options, BACKENDS["step-ca"].options];
  assert.equal(distinctOptions([cfssl, step]).length, cfssl.length + step.length);
  const stolen = { ...step[0]!, field: "authKeyFile" as const };
  assert.throws(
    () => distinctOptions([cfssl, [stolen]]),
    /CA option authKeyFile .* declared twice/,
  );
  const sameFlag = { ...step[0]!, field: "rootHash" };
  assert.throws(
    () => distinctOptions([step, [sameFlag]]),
    /CA option rootHash \(--ca-fingerprint\) is declared twice/,
  );
});

test("a backend's secrets are exactly the options it declares secret; the secret variables are the registry's", () => {
  for (const [type, t] of Object.entries(BACKENDS)) {
    const declared = t.options.filter((o) => o.secret).map((o) => o.field);
    assert.deepEqual(
      t.secrets.map((k) => k.setting).sort(),
      [...declared].sort(),
      `${type}: SecretKind settings = options declared secret`,
    );
    for (const k of t.secrets) {
      const o = t.options.find((p) => p.field === k.setting)!;
      assert.equal(k.flag, o.flag, `${type} ${k.setting}: the flag messages name is the option's`);
    }
  }
  assert.deepEqual(secretEnvSuffixes().sort(), ["AUTH_KEY", "PASSWORD", "TOKEN"]);
  for (const ca of CA_NAMES)
    for (const s of ["AUTH_KEY", "PASSWORD", "TOKEN"])
      assert.ok(secretEnvNames().includes(`${CAS[ca].envPrefix}${s}`), `${ca} ${s}`);
});

test("a CA's settings hold its own backend's fields only: CFSSL's profiles are no step-ca setting, step-ca's provisioner no CFSSL one", () => {
  const both = {
    caUrl: "https://ca:9000",
    caAuthKeyFile: "/k",
    clientProfile: "client",
    caProvisioner: "nodes",
    caPasswordFile: "/pw",
    caRenewAuth: "token",
  };
  const cfssl = cfsslOf(toSettings(mergeValues(flagValues(both)), "/").cas.kubernetes);
  assert.equal(cfssl.authKeyFile, "/k");
  assert.equal(cfssl.clientProfile, "client");
  for (const f of ["provisioner", "passwordFile", "renewAuth"])
    assert.equal(f in cfssl, false, `cfssl settings without ${f}`);
  assert.deepEqual(droppableSecretFiles(cfssl), ["/k"]);
  const step = stepCaOf(
    toSettings(mergeValues(flagValues({ ...both, caType: "step-ca" })), "/").cas.etcd,
  );
  assert.equal(step.provisioner, "nodes");
  assert.equal(step.passwordFile, "/pw");
  assert.equal(step.renewAuth, "token");
  for (const f of ["authKeyFile", "clientProfile"])
    assert.equal(f in step, false, `step-ca settings without ${f}`);
  assert.deepEqual(droppableSecretFiles(step), [], "step-ca drops no secret after join");
});

test("the root fingerprint step-ca declares is a trust anchor of every backend, lower-cased", () => {
  const fp = "AB".repeat(32);
  const s = toSettings(
    mergeValues(flagValues({ caUrl: "http://ca:8888", caFingerprint: fp })),
    "/",
  );
  assert.equal(cfsslOf(s.cas.kubernetes).fingerprint, fp.toLowerCase());
  assert.equal(s.cas.etcd.fingerprint, fp.toLowerCase(), "same server, same root");
});
