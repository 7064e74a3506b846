// X5C enrolment without a CA: the token's claims as step-ca 0.19's X5C provisioner checks them
// (authority/provisioner/x5c.go), the pre-flight of the machine certificate and key, the
// provisioner's roots, and the CLI's one-line refusal of settings that cannot work.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, KeyObject } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { decodeProtectedHeader, importX509, jwtVerify } from "jose";
import type { StepCaSettings } from "../../agent/ca/stepca-settings.js";
import { readCaInputs } from "../../agent/ca/index.js";
import {
  chainProblem,
  checkX5cRoots,
  x5cProvisionersOf,
  x5cSignToken,
} from "../../agent/ca/stepca/x5c.js";
import { tokenSans } from "../../agent/ca/stepca/sans.js";
import { pickProvisioner } from "../../agent/ca/stepca/tokens.js";
import { signX5cToken } from "../../agent/ca/x5c.js";
import { CaRefusedError, UsageError } from "../../agent/common/errors.js";
import { CAS } from "../../agent/pki/cas.js";
import { parseCert, type CertInfo } from "../../agent/pki/x509.js";
import { EKU, mint, privateKeyPem, type Minted } from "../helpers/chains.js";
import { tempRoot } from "../helpers/fs.js";
import { runMain } from "../helpers/in-process-cli.js";

const DAY = 86400_000;
const NOW = Date.now();
const root = await mint({ cn: "machine root", ca: true });
const inter = await mint({ cn: "machine intermediate", ca: true, issuer: root });
const leaf = await mint({ cn: "m1", issuer: inter, ekus: [EKU.clientAuth] });
const info = (m: Minted): CertInfo => parseCert(m.pem);
const keyOf = (m: Minted): KeyObject => KeyObject.from(m.keys.privateKey);

const WORKER_SERVING = {
  kind: "kubelet-server" as const,
  commonName: "system:node:w1",
  organizations: ["system:nodes"],
  sans: { dnsNames: ["w1"], ips: ["10.0.0.21"] },
};

test("the x5c token carries what x5c.go checks: iss, aud with #x5c/<name>, sub = CN, sans, one-time jti, the chain", async () => {
  const cred = { chain: [info(leaf), info(inter)], key: keyOf(leaf), certFile: "/m.crt" };
  const template = WORKER_SERVING as unknown as Parameters<typeof tokenSans>[0];
  const now = 1_900_000_000;
  const req = x5cSignToken(
    cred,
    "machines",
    { sub: template.commonName, sans: tokenSans(template) },
    "https://ca.example:9000",
    now,
    300,
  );
  assert.deepEqual(req.audience, ["https://ca.example:9000/1.0/sign#x5c/machines"]);
  const token = await signX5cToken(req);
  const header = decodeProtectedHeader(token);
  assert.deepEqual(header.x5c, [leaf.der.toString("base64"), inter.der.toString("base64")]);
  assert.equal(header.alg, "ES256");
  const { payload } = await jwtVerify(token, await importX509(leaf.pem, "ES256"), {
    issuer: "machines",
    subject: "system:node:w1",
    audience: "https://ca.example:9000/1.0/sign#x5c/machines",
    currentDate: new Date((now + 1) * 1000),
  });
  assert.deepEqual(payload.sans, ["w1", "10.0.0.21"]);
  assert.equal(payload.iat, now);
  assert.equal(payload.exp, now + 300);
  assert.match(String(payload.jti), /^[0-9a-f]{64}$/);
  const again = await signX5cToken(req);
  assert.notEqual(
    (
      await jwtVerify(again, await importX509(leaf.pem, "ES256"), {
        currentDate: new Date((now + 1) * 1000),
      })
    ).payload.jti,
    payload.jti,
    "each token its own jti",
  );
});

test("chainProblem: key, validity of every certificate, order of the chain, clientAuth", async () => {
  const chain = [info(leaf), info(inter)];
  assert.equal(chainProblem(chain, keyOf(leaf), NOW), undefined);
  assert.deepEqual(chainProblem(chain, keyOf(inter), NOW), {
    why: 'it is not the key of the machine certificate (CN "m1")',
    key: true,
  });
  const notAfter = new Date(Math.floor((NOW - DAY) / 1000) * 1000);
  const expired = await mint({
    cn: "m2",
    issuer: inter,
    ekus: [EKU.clientAuth],
    notBefore: new Date(NOW - 10 * DAY),
    notAfter,
  });
  assert.equal(
    chainProblem([info(expired), info(inter)], keyOf(expired), NOW)?.why,
    `the machine certificate (CN "m2") expired on ${notAfter.toISOString()}: X5C enrolment needs a currently valid one`,
  );
  const notBefore = new Date(Math.floor((NOW + DAY) / 1000) * 1000);
  const early = await mint({ cn: "m3", issuer: inter, ekus: [EKU.clientAuth], notBefore });
  assert.equal(
    chainProblem([info(early)], keyOf(early), NOW)?.why,
    `the machine certificate (CN "m3") is not valid before ${notBefore.toISOString()}`,
  );
  // The intermediate's own validity counts too (Go's Verify checks the whole chain).
  assert.match(
    chainProblem(chain, keyOf(leaf), NOW + 400 * DAY)?.why ?? "",
    /^the machine certificate \(CN "m1"\) expired on /,
  );
  assert.equal(
    chainProblem([info(leaf), info(root)], keyOf(leaf), NOW)?.why,
    'certificate 2 (CN "machine root") did not issue the machine certificate (CN "m1"): give the machine certificate first, then each intermediate in order',
  );
  const serverOnly = await mint({ cn: "m4", issuer: inter, ekus: [EKU.serverAuth] });
  assert.match(
    chainProblem([info(serverOnly)], keyOf(serverOnly), NOW)?.why ?? "",
    /is not for client authentication/,
  );
  const anyEku = await mint({ cn: "m5", issuer: inter, ekus: [EKU.any] });
  assert.equal(chainProblem([info(anyEku)], keyOf(anyEku), NOW), undefined);
  const k1 = generateKeyPairSync("ec", { namedCurve: "secp256k1" });
  assert.deepEqual(
    chainProblem(
      [{ ...info(leaf), spki: k1.publicKey.export({ type: "spki", format: "der" }) }],
      k1.privateKey,
      NOW,
    ),
    {
      why: "cannot sign with EC curve secp256k1",
      key: true,
    },
  );
});

test("the provisioners' list: X5C ones with their roots; picked by name or as the only one; roots that did not issue the machine certificate refused", () => {
  const list = [
    { type: "JWK", name: "workers", key: {} },
    { type: "X5C", name: "machines", roots: Buffer.from(root.pem).toString("base64") },
    { type: "X5C", name: "other" },
  ];
  const all = x5cProvisionersOf(list);
  assert.deepEqual(
    all.map((p) => [p.name, p.roots?.map((r) => r.commonName)]),
    [
      ["machines", ["machine root"]],
      ["other", undefined],
    ],
  );
  assert.equal(pickProvisioner("X5C", all, "machines", "CA kubernetes", "").name, "machines");
  assert.throws(
    () => pickProvisioner("X5C", all, undefined, "CA kubernetes", ""),
    new UsageError(
      "CA kubernetes: choose the X5C provisioner with --ca-provisioner (the CA has: machines, other)",
    ),
  );
  assert.throws(
    () => pickProvisioner("X5C", all, "workers", "CA etcd", "etcd-"),
    new UsageError(
      'CA etcd: no X5C provisioner "workers" (--etcd-ca-provisioner); the CA has: machines, other',
    ),
  );
  assert.throws(
    () => pickProvisioner("X5C", [], undefined, "CA kubernetes", ""),
    new UsageError("CA kubernetes: the CA has no X5C provisioner"),
  );
  const cred = { chain: [info(leaf), info(inter)], key: keyOf(leaf), certFile: "/m.crt" };
  checkX5cRoots(cred, all[0]!, "CA kubernetes");
  checkX5cRoots(cred, all[1]!, "CA kubernetes"); // no published roots: the CA decides
  assert.throws(
    () => checkX5cRoots({ ...cred, chain: [info(leaf)] }, all[0]!, "CA kubernetes"),
    new CaRefusedError(
      'CA kubernetes: the machine certificate in /m.crt (CN "m1", issuer "machine intermediate") does not chain to the roots of X5C provisioner "machines" ("machine root"); no CSR was sent',
    ),
  );
});

/** machine.crt and machine.key (0600) in a fresh directory. */
async function files(
  m: Minted = leaf,
  chain: Minted[] = [inter],
): Promise<{ cert: string; key: string }> {
  const dir = join(tempRoot("nj-x5c-unit-"), "etc");
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, "machine.crt");
  const key = join(dir, "machine.key");
  writeFileSync(cert, [m, ...chain].map((c) => c.pem).join(""));
  writeFileSync(key, await privateKeyPem(m), { mode: 0o600 });
  return { cert, key };
}

const settings = (more: Partial<StepCaSettings>): StepCaSettings => ({
  type: "step-ca",
  urls: ["https://ca.example:9000"],
  certHashes: [],
  fingerprint: "a".repeat(64),
  ...more,
});

test("the pre-flight reads the credential; a renewal keeps an unusable one's reason instead of failing", async () => {
  const f = await files();
  const ok = readCaInputs(
    CAS.kubernetes,
    settings({ x5cCertFile: f.cert, x5cKeyFile: f.key }),
    {},
    {
      renewal: false,
      now: NOW,
    },
  );
  assert.deepEqual(
    ok.x5c?.chain.map((c) => c.commonName),
    ["m1", "machine intermediate"],
  );
  assert.equal(ok.x5c?.certFile, f.cert);
  const later = NOW + 400 * DAY;
  const s = settings({ x5cCertFile: f.cert, x5cKeyFile: f.key });
  assert.throws(
    () => readCaInputs(CAS.kubernetes, s, {}, { renewal: false, now: later }),
    (e: unknown) => e instanceof UsageError && /expired on/.test(e.message),
  );
  const renewal = readCaInputs(CAS.kubernetes, s, {}, { renewal: true, now: later });
  assert.equal(renewal.x5c, undefined);
  assert.match(renewal.x5cUnusable ?? "", /^step-ca X5C machine certificate file .* expired on /);
  // A renewal without the key (removed after the join) renews with the installed certificate.
  const gone = settings({ x5cCertFile: f.cert, x5cKeyFile: `${f.key}.gone` });
  assert.deepEqual(readCaInputs(CAS.kubernetes, gone, {}, { renewal: true, now: NOW }), {});
});

test("join refuses X5C settings that cannot work in one line, exit 2, before any request", async () => {
  const f = await files();
  // A secret file (0600) that holds a certificate, no key.
  const notKey = `${f.key}.crt`;
  writeFileSync(notKey, leaf.pem, { mode: 0o600 });
  const join1 = (more: string[], env: NodeJS.ProcessEnv = {}) =>
    runMain(
      [
        "join",
        "--root",
        tempRoot("nj-x5c-unit-"),
        "--api-server",
        "https://10.0.0.1:6443",
        "--ca-type",
        "step-ca",
        // Nothing listens there: a request would fail otherwise.
        "--ca-url",
        "https://127.0.0.1:9",
        "--ca-fingerprint",
        "a".repeat(64),
        "--node-name",
        "w1",
        "--ip",
        "10.0.0.21",
        ...more,
      ],
      env,
    );
  const cases: [string[], string][] = [
    [
      ["--ca-x5c-cert", f.cert],
      "CA kubernetes: --ca-x5c-cert, config cas.kubernetes.x5cCertFile needs --ca-x5c-key, config cas.kubernetes.x5cKeyFile too: X5C enrolment takes the machine certificate and its key",
    ],
    [
      ["--ca-x5c-cert", f.cert, "--ca-x5c-key", f.key, "--ca-token-file", f.key],
      `CA kubernetes: --ca-x5c-cert/--ca-x5c-key (X5C enrolment) and --ca-token-file ${f.key} are mutually exclusive: give the machine certificate or one-time tokens, not both`,
    ],
    [
      ["--ca-x5c-cert", f.key, "--ca-x5c-key", f.key],
      `CA kubernetes: step-ca X5C machine certificate file ${f.key} (--ca-x5c-cert, config cas.kubernetes.x5cCertFile): it holds no PEM certificate`,
    ],
    [
      ["--ca-x5c-cert", f.cert, "--ca-x5c-key", notKey],
      `CA kubernetes: step-ca X5C machine key file ${notKey} (--ca-x5c-key, config cas.kubernetes.x5cKeyFile) is not an unencrypted PEM private key`,
    ],
  ];
  for (const [more, message] of cases) {
    const out = await join1(more);
    assert.equal(out.code, 2, out.stderr);
    assert.equal(out.stderr, `node-join: error: ${message}\n`);
  }
  // The password in its environment variable conflicts the same way.
  const r = await join1(["--ca-x5c-cert", f.cert, "--ca-x5c-key", f.key], {
    NODE_JOIN_CA_PASSWORD: "pw",
  });
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    "node-join: error: CA kubernetes: --ca-x5c-cert/--ca-x5c-key (X5C enrolment) and NODE_JOIN_CA_PASSWORD are mutually exclusive: give the machine certificate or the provisioner password, not both\n",
  );
});
