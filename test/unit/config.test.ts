import { test } from "node:test";
import assert from "node:assert/strict";
import {
  envValues,
  flagValues,
  mergeValues,
  parseConfigText,
  renderConfig,
} from "../../agent/config/sources.js";
import { toSettings } from "../../agent/config/settings.js";
import { hostPath } from "../../agent/store/layout.js";
import { parseDuration } from "../../agent/common/duration.js";
import { UsageError } from "../../agent/common/errors.js";
import { cfsslOf, stepCaOf } from "../helpers/ca-settings.js";

const PIN = "sha256:" + "ab".repeat(32);

test("flags override environment override file override defaults", () => {
  const file = parseConfigText(
    `apiServer: https://file:6443\nkeyAlgorithm: rsa-2048\ntimeout: 1m\nnodeName: from-file\ncas:\n  kubernetes:\n    url: http://file-ca:8888\n    certHashes: [${PIN}]\n`,
    "c.yaml",
  );
  const env = envValues({
    NODE_JOIN_KEY_ALGORITHM: "ecdsa-p384",
    NODE_JOIN_CA_URL: "http://env-ca:8888",
    NODE_JOIN_IP: "10.0.0.1,10.0.0.2",
  });
  const flags = flagValues({ caUrl: "https://flag-ca:8888" });
  const s = toSettings(mergeValues(file, env, flags), "/");
  assert.deepEqual(s.cas.kubernetes.urls, ["https://flag-ca:8888"]);
  assert.equal(s.keyAlgorithm, "ecdsa-p384");
  assert.equal(s.apiServer, "https://file:6443");
  assert.equal(s.nodeName, "from-file");
  assert.equal(s.timeoutMs, 60_000);
  assert.deepEqual(s.ips, ["10.0.0.1", "10.0.0.2"]);
  assert.deepEqual(s.cas.kubernetes.certHashes, [PIN]);
  const d = toSettings(new Map(), "/");
  assert.equal(d.role, "worker");
  assert.equal(d.keyAlgorithm, "ecdsa-p256");
  assert.equal(d.timeoutMs, 300_000);
  assert.equal(d.cas.kubernetes.type, "cfssl");
});

test("unknown keys and bad values are errors naming the key", () => {
  const bad: [string, RegExp][] = [
    ["apiServr: https://x", /unknown key apiServr/],
    ["cas:\n  kubernetes:\n    ulr: http://x", /unknown key cas\.kubernetes\.ulr/],
    ["cas:\n  vault: {}", /unknown key cas\.vault/],
    ["keyAlgorithm: dsa", /config key keyAlgorithm: must be one of/],
    ["timeout: soon", /config key timeout: must be a duration/],
    ["ips: 10.0.0.1", /config key ips: must be a list/],
    ["ips: [300.1.1.1]", /config key ips: "300\.1\.1\.1" is not an IP/],
    [
      "cas:\n  kubernetes:\n    certHashes: [sha256:abc]",
      /config key cas\.kubernetes\.certHashes: "sha256:abc" is not sha256/,
    ],
    ["apiServer: http://x:6443", /config key apiServer: must be a https URL/],
    ["role: master", /config key role: must be one of worker, control-plane/],
    ["renew:\n  reuseKey: yes-please", /config key renew\.reuseKey: must be true or false/],
    [
      "hooks:\n  postRenew: [systemctl restart kubelet]",
      /config key hooks\.postRenew: must be a list of non-empty argv lists/,
    ],
    ["controlPlane:\n  bindPort: '6443'", /config key controlPlane\.bindPort: must be an integer/],
    ["- a\n- b", /top level must be a mapping/],
    ["a: [", /not valid YAML/],
  ];
  for (const [text, pattern] of bad) {
    assert.throws(
      () => parseConfigText(text, "/etc/node-join/config.yaml"),
      (err: unknown) =>
        err instanceof UsageError && err.exitCode === 2 && pattern.test(err.message),
      text,
    );
  }
  assert.throws(
    () => envValues({ NODE_JOIN_TIMEOUT: "forever" }),
    /environment variable NODE_JOIN_TIMEOUT: must be a duration/,
  );
  assert.throws(() => flagValues({ caCertHash: ["nope"] }), /--ca-cert-hash: "nope" is not sha256/);
});

test("durations", () => {
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("2d"), 172_800_000);
  assert.equal(parseDuration("5"), undefined);
  assert.equal(parseDuration("m5"), undefined);
});

test("the front-proxy and etcd CAs default to the kubernetes CA's server with their own label", () => {
  const s = toSettings(
    mergeValues(
      flagValues({
        caUrl: "http://ca:8888",
        caAuthKeyFile: "/k",
        clientProfile: "client",
        etcdCaCertHash: [PIN],
      }),
    ),
    "/",
  );
  assert.deepEqual(s.cas.etcd.urls, ["http://ca:8888"]);
  assert.equal(s.cas.etcd.label, "etcd");
  assert.equal(s.cas.frontProxy.label, "front-proxy");
  assert.equal(cfsslOf(s.cas.etcd).authKeyFile, "/k");
  assert.equal(cfsslOf(s.cas.etcd).clientProfile, "client");
  assert.deepEqual(s.cas.etcd.certHashes, [PIN]);
  assert.deepEqual(s.cas.frontProxy.certHashes, [], "pins are per CA, never inherited");
  const own = toSettings(
    mergeValues(flagValues({ caUrl: "http://ca:8888", etcdCaUrl: "http://etcd-ca:8888" })),
    "/",
  );
  assert.deepEqual(own.cas.etcd.urls, ["http://etcd-ca:8888"]);
});

test("a CA enrolling another way than the kubernetes CA inherits none of its enrolment settings, nor its provisioner", () => {
  const stepCa = (more: Parameters<typeof flagValues>[0]) =>
    toSettings(
      mergeValues(flagValues({ caType: "step-ca", caUrl: "https://ca:9000", ...more })),
      "/",
    );
  const s = stepCa({
    caX5cCert: "/m.crt",
    caX5cKey: "/m.key",
    caProvisioner: "machines",
    etcdCaPasswordFile: "/etcd.pw",
    frontProxyCaProvisioner: "fp",
  });
  // etcd: its own password, no inherited machine certificate or X5C provisioner
  assert.equal(stepCaOf(s.cas.etcd).passwordFile, "/etcd.pw");
  assert.equal(stepCaOf(s.cas.etcd).x5cCertFile, undefined);
  assert.equal(stepCaOf(s.cas.etcd).x5cKeyFile, undefined);
  assert.equal(stepCaOf(s.cas.etcd).provisioner, undefined);
  // front-proxy: only a provisioner of its own, so the machine certificate is still shared
  assert.equal(stepCaOf(s.cas.frontProxy).provisioner, "fp");
  assert.equal(stepCaOf(s.cas.frontProxy).x5cCertFile, "/m.crt");
  assert.equal(stepCaOf(s.cas.frontProxy).x5cKeyFile, "/m.key");
  // and the reverse: a password on the kubernetes CA, a machine certificate on the etcd CA
  const r = stepCa({
    caPasswordFile: "/k.pw",
    caProvisioner: "control-plane",
    etcdCaX5cCert: "/m.crt",
    etcdCaX5cKey: "/m.key",
  });
  assert.equal(stepCaOf(r.cas.etcd).passwordFile, undefined);
  assert.equal(stepCaOf(r.cas.etcd).provisioner, undefined);
  assert.equal(stepCaOf(r.cas.frontProxy).passwordFile, "/k.pw");
  // the same way (JWK): a token file of its own beside the shared password and provisioner
  const same = stepCa({
    caPasswordFile: "/k.pw",
    caProvisioner: "control-plane",
    etcdCaTokenFile: "/etcd.tokens",
  });
  assert.deepEqual(
    [
      stepCaOf(same.cas.etcd).tokenFile,
      stepCaOf(same.cas.etcd).passwordFile,
      stepCaOf(same.cas.etcd).provisioner,
    ],
    ["/etcd.tokens", "/k.pw", "control-plane"],
  );
});

test("the persisted config round-trips, holds no secret, and stores paths as the booted host sees them", () => {
  const values = mergeValues(
    flagValues({
      apiServer: "https://api:6443",
      caUrl: "http://ca:8888",
      caCertHash: [PIN],
      caAuthKeyFile: "/target/etc/node-join/ca-auth.key",
      ip: ["10.0.0.5"],
    }),
  );
  const text = renderConfig(values, "/target");
  assert.match(text, /authKeyFile: \/etc\/node-join\/ca-auth\.key/);
  const back = parseConfigText(text, "config.yaml");
  assert.equal(back.get("apiServer"), "https://api:6443");
  assert.deepEqual(back.get("ips"), ["10.0.0.5"]);
  assert.equal(hostPath("/elsewhere/x", "/target"), "/elsewhere/x");
  assert.equal(hostPath("/etc/x", "/"), "/etc/x");
});
