// step-ca backend pieces that need no CA: routing given tokens to certificates, the error mapping,
// and the per-CA settings (fingerprint, provisioner, password and token files).
import { test } from "node:test";
import assert from "node:assert/strict";
import { checkJoinSettings, toSettings } from "../../agent/config/settings.js";
import {
  flagValues,
  mergeValues,
  parseConfigText,
  renderConfig,
} from "../../agent/config/sources.js";
import type { CertTemplate } from "../../agent/pki/certs.js";
const b64url = (s: string): string => Buffer.from(s).toString("base64url");
import { stepCaRefusal } from "../../agent/ca/stepca/client.js";
import { tokenRefusedMessage } from "../../agent/ca/stepca/enrol.js";
import { mtlsRefused, renewalPaths } from "../../agent/ca/stepca/renew.js";
import { parseTokenList, tokenFits, TokenPool } from "../../agent/ca/stepca/tokens.js";
import { UsageError } from "../../agent/common/errors.js";
import { stepCaOf } from "../helpers/ca-settings.js";

const FP = "ab".repeat(32);
const NOW = 1_800_000_000;

/** An unsigned token: routing reads claims only (the CA checks the signature). */
function token(claims: Record<string, unknown>): string {
  return `${b64url(JSON.stringify({ alg: "ES256", kid: "k", typ: "JWT" }))}.${b64url(JSON.stringify({ exp: NOW + 300, sha: FP, ...claims }))}.c2ln`;
}

const tpl = (cn: string, dnsNames: string[] = [], ips: string[] = []): CertTemplate => ({
  commonName: cn,
  organizations: [],
  sans: { dnsNames, ips },
  usages: ["clientAuth"],
});
const client = { kind: "kubelet-client", template: tpl("system:node:w1") };
const server = {
  kind: "kubelet-server",
  template: tpl("system:node:w1", ["w1", "w1.lab"], ["10.0.0.21", "2001:db8::21"]),
};

test("tokens are routed by sub and sans, in any order, each to one certificate", () => {
  const text = [
    "# minted with step ca token",
    token({ sub: "system:node:w1", sans: ["2001:DB8:0:0:0:0:0:21", "W1.lab", "10.0.0.21", "w1"] }),
    "",
    token({ sub: "system:node:w1", sans: ["system:node:w1"] }),
  ].join("\n");
  const list = parseTokenList(text, "/etc/node-join/ca.token");
  assert.equal(list.length, 2);
  assert.ok(tokenFits(list[0]!, server.template), "IPv6 and case normalized");
  assert.ok(!tokenFits(list[0]!, client.template));
  assert.ok(
    tokenFits(list[1]!, client.template),
    "[CN] is what step ca token writes without --san",
  );
  assert.ok(tokenFits({ ...list[1]!, sans: [] }, client.template));
  assert.ok(
    !tokenFits({ ...list[1]!, sans: ["w1"] }, client.template),
    "a SAN the certificate will not have",
  );
  assert.ok(
    !tokenFits({ ...list[0]!, sans: ["w1", "w1.lab", "10.0.0.21"] }, server.template),
    "one SAN short",
  );

  const pool = new TokenPool(list, NOW, [FP]);
  assert.deepEqual(pool.reserve([client, server]), []);
  assert.equal(pool.take(server)?.position, 1);
  assert.equal(pool.take(client)?.position, 2);
  assert.equal(pool.take(client), undefined, "single use");
  assert.equal(pool.has(server), false);
});

test("expired tokens, tokens for another CA and another node are left out, and the summary says why", () => {
  const list = parseTokenList(
    [
      token({ sub: "system:node:w1", exp: NOW - 1 }),
      token({ sub: "system:node:w1", sha: "cd".repeat(32) }),
      token({ sub: "system:node:other" }),
    ].join(" , "),
    "NODE_JOIN_CA_TOKEN",
  );
  const pool = new TokenPool(list, NOW, [FP]);
  assert.equal(pool.size, 1);
  assert.deepEqual(pool.reserve([client]), [client]);
  const summary = pool.summary();
  assert.match(summary, /token 3: system:node:other/);
  assert.match(summary, /token 1: system:node:w1, expired at /);
  assert.match(summary, /token 2: system:node:w1, minted for another CA \(root fingerprint cdcd/);
});

test("text that is not a token is a usage error naming its position and source", () => {
  assert.throws(
    () => parseTokenList("not-a-jwt", "/x/ca.token"),
    (e: Error) =>
      e instanceof UsageError &&
      /token 1 in \/x\/ca\.token is not a step-ca one-time token/.test(e.message),
  );
  assert.throws(
    () => parseTokenList(`${b64url("{}")}.${b64url("{}")}.x`, "F"),
    /token 1 in F has no sub claim/,
  );
});

test("step-ca answers map to refusals: 401 lists the usual causes, 403 carries the CA's reason", () => {
  const r401 = stepCaRefusal(
    401,
    '{"status":401,"message":"The request lacked necessary authorization"}',
    "CA kubernetes (step-ca https://ca) signing kubelet-client",
    tokenRefusedMessage("the one-time token 1 from F", "https://ca"),
  );
  assert.equal(r401.exitCode, 4);
  assert.match(r401.message, /the one-time token 1 from F was refused \(HTTP 401/);
  for (const cause of [
    /wrong provisioner password/,
    /already used/,
    /expired/,
    /clock skew/,
    /audience\) than https:\/\/ca/,
    /CN or SANs differ/,
    /before the CA \(re\)started/,
  ]) {
    assert.match(r401.message, cause);
  }
  const r403 = stepCaRefusal(
    403,
    '{"status":403,"message":"certificate request does not contain the valid DNS names - got [a], want [b]"}',
    "X signing k",
    "",
  );
  assert.equal(r403.exitCode, 4);
  assert.equal(
    r403.message,
    "X signing k refused: certificate request does not contain the valid DNS names - got [a], want [b]",
  );
  assert.equal(stepCaRefusal(400, "not json", "X", "").message, "X: HTTP 400");
  assert.ok(!r401.message.includes("\n"), "one line");
});

test("step-ca settings: per-CA provisioner, inherited server, fingerprint as trust anchor, only paths persisted", () => {
  const flags = flagValues({
    caType: "step-ca",
    caUrl: "https://ca.lab:9000",
    caFingerprint: FP.toUpperCase(),
    caProvisioner: "control-plane",
    caPasswordFile: "/etc/node-join/cp.password",
    etcdCaProvisioner: "etcd",
    etcdCaTokenFile: "/etc/node-join/etcd.tokens",
  });
  const s = toSettings(mergeValues(flags), "/");
  assert.equal(s.cas.kubernetes.type, "step-ca");
  assert.equal(s.cas.kubernetes.fingerprint, FP, "lower-cased");
  for (const ca of ["frontProxy", "etcd"] as const) {
    assert.equal(s.cas[ca].type, "step-ca");
    assert.deepEqual(s.cas[ca].urls, ["https://ca.lab:9000"]);
    assert.equal(s.cas[ca].fingerprint, FP, "same server, same root");
    assert.equal(stepCaOf(s.cas[ca]).passwordFile, "/etc/node-join/cp.password");
  }
  assert.equal(stepCaOf(s.cas.frontProxy).provisioner, "control-plane");
  assert.equal(stepCaOf(s.cas.etcd).provisioner, "etcd");
  assert.equal(stepCaOf(s.cas.etcd).tokenFile, "/etc/node-join/etcd.tokens");
  assert.equal(stepCaOf(s.cas.kubernetes).tokenFile, undefined);
  // A CA on its own server does not inherit the kubernetes CA's root.
  const own = toSettings(
    mergeValues(
      flags,
      flagValues({ etcdCaUrl: "https://etcd-ca.lab:9000", etcdCaType: "step-ca" }),
    ),
    "/",
  );
  assert.equal(own.cas.etcd.fingerprint, undefined);
  assert.doesNotThrow(() =>
    checkJoinSettings({ ...s, apiServer: "https://x:6443" }, ["kubernetes", "frontProxy", "etcd"]),
  );
  assert.throws(
    () => checkJoinSettings({ ...own, apiServer: "https://x:6443" }, ["etcd"]),
    /etcd CA: no trust anchor: give --etcd-ca-fingerprint <hex>, --etcd-ca-cert-hash/,
  );
  assert.throws(
    () => flagValues({ caFingerprint: "sha256:abc" }),
    /--ca-fingerprint: is not a SHA-256 fingerprint/,
  );
  const yaml = renderConfig(mergeValues(flags), "/");
  assert.match(yaml, /passwordFile: \/etc\/node-join\/cp\.password/);
  assert.deepEqual(
    parseConfigText(yaml, "c.yaml").get("cas.kubernetes.provisioner"),
    "control-plane",
  );
});

test("renewal paths: auto tries mTLS, then the token only when the certificate did not reach step-ca; after expiry only the token", () => {
  // [auth, expired, mTLS refused earlier in the run] -> paths in order
  const cases: [Parameters<typeof renewalPaths>, ReturnType<typeof renewalPaths>][] = [
    [
      ["auto", false, false],
      ["mtls", "token"],
    ],
    [["auto", false, true], ["token"]],
    [["auto", true, false], ["token"]],
    [["mtls", false, false], ["mtls"]],
    [["mtls", false, true], ["mtls"]],
    [["mtls", true, false], []],
    [["token", false, false], ["token"]],
    [["token", true, false], ["token"]],
  ];
  for (const [args, want] of cases) assert.deepEqual(renewalPaths(...args), want, args.join(" "));
});

test("mTLS refused: step-ca's 400 'missing client certificate' (a TLS-terminating proxy), a proxy's own 403, 495, 496; not step-ca's 401 or 403, other 400s, 404 or 5xx", () => {
  const missing = JSON.stringify({
    status: 400,
    message: "The request could not be completed: missing client certificate.",
  });
  assert.equal(mtlsRefused(400, missing), true);
  assert.equal(mtlsRefused(400, "missing client certificate"), true, "a proxy's plain text");
  assert.equal(mtlsRefused(403, "<html>403 Forbidden</html>"), true, "a proxy's 403");
  for (const status of [495, 496]) assert.equal(mtlsRefused(status, ""), true, `${status}`);
  // step-ca got the certificate and refused it: revoked, renewal disabled, a policy.
  const stepCa = (status: number, message: string) => JSON.stringify({ status, message });
  assert.equal(mtlsRefused(401, stepCa(401, "The request lacked necessary authorization")), false);
  assert.equal(mtlsRefused(401, ""), false);
  assert.equal(mtlsRefused(403, stepCa(403, "The request was forbidden")), false);
  assert.equal(
    mtlsRefused(400, stepCa(400, "The request could not be completed: invalid csr.")),
    false,
  );
  for (const status of [404, 500, 502, 503])
    assert.equal(mtlsRefused(status, missing), false, `${status}`);
});

test("cas.<ca>.renewAuth: a choice per CA, the kubernetes CA's serves the others, refused outside its choices", () => {
  const s = toSettings(
    mergeValues(
      flagValues({ caType: "step-ca", caUrl: "https://ca.lab:9000", caRenewAuth: "token" }),
    ),
    "/",
  );
  for (const ca of ["kubernetes", "frontProxy", "etcd"] as const)
    assert.equal(stepCaOf(s.cas[ca]).renewAuth, "token");
  const own = toSettings(
    mergeValues(
      flagValues({ caType: "step-ca", caUrl: "https://ca.lab:9000", etcdCaRenewAuth: "mtls" }),
    ),
    "/",
  );
  assert.equal(stepCaOf(own.cas.kubernetes).renewAuth, undefined, "default: auto");
  assert.equal(stepCaOf(own.cas.etcd).renewAuth, "mtls");
  assert.throws(() => flagValues({ caRenewAuth: "bearer" }), /--ca-renew-auth/);
  assert.match(
    renderConfig(mergeValues(flagValues({ caRenewAuth: "token" })), "/"),
    /renewAuth: token/,
  );
});
