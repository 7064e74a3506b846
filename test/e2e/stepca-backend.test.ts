// The step-ca backend's renew() against a real step-ca, driven as the engine drives it (the
// assessment decides renewal or enrolment, engine/issue.ts renewOrEnrol): rekey (fresh key) and
// renew (same key) over mTLS with the current certificate, the token renewal (directly and through
// a TLS-terminating proxy), and what happens to an expired certificate.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { BackendContext, CaBackend, Renewed, SignRequest } from "../../agent/ca/backend.js";
import type { StepCaSettings } from "../../agent/ca/stepca-settings.js";
import { CAS } from "../../agent/pki/cas.js";
import { readCaInputs, requestedSansFor } from "../../agent/ca/index.js";
import { createStepCaBackend } from "../../agent/ca/stepca/index.js";
import { assessKind } from "../../agent/engine/assess.js";
import { renewOrEnrol } from "../../agent/engine/issue.js";
import { templateFor, findKind, type TableContext } from "../../agent/pki/certs.js";
import { buildCsr } from "../../agent/pki/csr.js";
import { CaRefusedError } from "../../agent/common/errors.js";
import { generateKey, loadKey, spkiDer, toWebCrypto, type NodeKey } from "../../agent/pki/keys.js";
import { systemClock } from "../../agent/common/clock.js";
import { verifyIssued } from "../../agent/pki/verify.js";
import { parseCert, splitPemCertificates, type CertInfo } from "../../agent/pki/x509.js";
import { issueLeaf, makeCa } from "../helpers/pki.js";
import { expiringProvisioners, useStepCa, stepCaLog } from "../helpers/stepca.js";
import { useTlsProxy } from "../helpers/tls-proxy.js";

const ca = useStepCa({
  provisioners: [
    { name: "workers", organization: ["system:nodes"] },
    // Certificates that expire while the test watches: renewable after expiry or not.
    ...expiringProvisioners("3s"),
  ],
});
const proxy = useTlsProxy(ca);

const TABLE: TableContext = {
  node: { nodeName: "r1", ips: ["10.0.0.31"], dnsNames: [] },
  apiServer: "https://10.0.0.1:6443",
};
const server = findKind("kubelet-server")!;
const template = templateFor(server, TABLE);

function backend(
  settings: Partial<StepCaSettings>,
  env: NodeJS.ProcessEnv = {},
): { b: CaBackend; log: string[] } {
  const log: string[] = [];
  const full: StepCaSettings = {
    type: "step-ca",
    urls: [ca.url],
    certHashes: [],
    fingerprint: ca.rootFingerprint,
    ...settings,
  };
  const ctx: BackendContext<StepCaSettings> = {
    ca: CAS.kubernetes,
    settings: full,
    unsafeSkipCaVerification: false,
    // What the engine reads before it contacts the CA (engine/issue.ts connectCas).
    secrets: readCaInputs(CAS.kubernetes, full, env, { renewal: false, now: Date.now() }),
    env,
    clock: systemClock,
    deadline: Date.now() + 20_000,
    log: (l) => log.push(l),
  };
  return { b: createStepCaBackend(ctx), log };
}

const withPassword = (provisioner: string) =>
  backend(
    { provisioner },
    { NODE_JOIN_CA_PASSWORD: ca.provisioners.find((p) => p.name === provisioner)!.password },
  );

async function request(key: NodeKey): Promise<SignRequest> {
  return {
    kind: server.name,
    profile: server.profile,
    csrPem: await buildCsr(template, key),
    template,
  };
}

/**
 * A renewal of the installed `currentCertPem` as `renew --force` asks for it: assessed against the
 * CA's anchors (engine/assess.ts), then renewed or enrolled again (engine/issue.ts renewOrEnrol).
 */
function renewal(
  b: CaBackend,
  anchors: CertInfo[],
  req: SignRequest & { currentCertPem: string; currentKeyPem: string },
  log: string[] = [],
): Promise<Renewed> {
  const { currentCertPem, currentKeyPem, ...sign } = req;
  const installed = {
    chain: splitPemCertificates(currentCertPem).map(parseCert),
    keyPem: currentKeyPem,
  };
  const verdict = assessKind({ kind: server, file: "kubelet-server.pem", installed }, template, {
    force: true,
    anchors: () => anchors,
    requestedSans: (_, t) => requestedSansFor("step-ca", t),
    now: new Date(),
  });
  return renewOrEnrol(b, sign, installed, verdict, (l) => log.push(l));
}

function verified(chainPem: string, key: NodeKey, anchors: CertInfo[]): CertInfo {
  return verifyIssued({
    kind: server.name,
    ca: "step-ca",
    chainPem,
    expectedSpki: spkiDer(key.privateKey),
    anchors,
    template,
    now: new Date(),
  }).leaf;
}

const count = (path: string) =>
  (stepCaLog(ca).match(new RegExp(`path=${path.replace(/\//g, "\\/")} `, "g")) ?? []).length;

test("renew() rekeys over mTLS with a fresh key and renews with the same key; no enrolment secret needed", async () => {
  const { b: enrol } = withPassword("workers");
  const anchors = await enrol.fetchCaBundle();
  const key1 = await generateKey("ecdsa-p256");
  const chain1 = await enrol.sign(await request(key1));
  const leaf1 = verified(chain1, key1, anchors);

  const { b } = backend({});
  await b.fetchCaBundle();
  /** renew() with `key` for the certificate `current` of `currentKey`, verified. */
  const renewWith = async (key: NodeKey, current: string, currentKey: NodeKey) => {
    const req = { ...(await request(key)), currentCertPem: current, currentKeyPem: currentKey.pem };
    const { chainPem } = await renewal(b, anchors, req);
    return { chain: chainPem, leaf: verified(chainPem, key, anchors) };
  };
  const key2 = await generateKey("ecdsa-p256");
  const rekeys = count("/1.0/rekey");
  const { chain: chain2, leaf: leaf2 } = await renewWith(key2, chain1, key1);
  assert.equal(count("/1.0/rekey"), rekeys + 1, "step-ca logged a rekey");
  assert.notEqual(leaf2.serial, leaf1.serial);
  assert.ok(!leaf2.spki.equals(leaf1.spki), "a new key");
  assert.deepEqual(leaf2.organizations, ["system:nodes"]);
  assert.equal(splitPemCertificates(chain2).length, 2, "leaf and intermediate");

  const renews = count("/1.0/renew");
  const same = loadKey(key2.pem);
  const { leaf: leaf3 } = await renewWith(same, chain2, key2);
  assert.equal(count("/1.0/renew"), renews + 1, "step-ca logged a renew");
  assert.ok(leaf3.spki.equals(leaf2.spki), "the same key");
  assert.notEqual(leaf3.serial, leaf2.serial);
});

test("an expired certificate: clear refusal without an enrolment secret, enrolment again with one", async () => {
  const { b: enrol } = withPassword("brief");
  const anchors = await enrol.fetchCaBundle();
  const key = await generateKey("ecdsa-p256");
  const chain = await enrol.sign(await request(key));
  const leaf = parseCert(splitPemCertificates(chain)[0]!);
  await new Promise((r) => setTimeout(r, Math.max(0, leaf.notAfter.getTime() - Date.now()) + 1100));

  const { b: bare } = backend({ provisioner: "brief" });
  await bare.fetchCaBundle();
  const fresh = await generateKey("ecdsa-p256");
  const req = { ...(await request(fresh)), currentCertPem: chain, currentKeyPem: key.pem };
  const signs = count("/1.0/sign");
  await assert.rejects(renewal(bare, anchors, req), (err: Error) => {
    assert.ok(err instanceof CaRefusedError);
    assert.match(
      err.message,
      new RegExp(
        `kubelet-server expired on ${leaf.notAfter.toISOString().replace(/\./g, "\\.")} and the CA refused to renew it with a token signed by its key \\(HTTP 401\\): its provisioner does not allow renewal after expiry \\(claim allowRenewalAfterExpiry\\), or the certificate was revoked, so it cannot be renewed: give a one-time token for it \\(--ca-token-file or NODE_JOIN_CA_TOKEN\\) or the provisioner password \\(--ca-provisioner with --ca-password-file or NODE_JOIN_CA_PASSWORD\\) or the machine certificate \\(--ca-x5c-cert with --ca-x5c-key\\), then renew again$`,
      ),
    );
    return true;
  });
  assert.equal(count("/1.0/sign"), signs, "nothing was sent");

  const { b: again, log } = withPassword("brief");
  await again.fetchCaBundle();
  const renewed = verified((await renewal(again, anchors, req, log)).chainPem, fresh, anchors);
  assert.ok(renewed.notAfter.getTime() > Date.now());
  assert.equal(count("/1.0/sign"), signs + 1, "enrolled again with a minted token");
  assert.match(log.join("\n"), /expired on .*: enrolling kubelet-server again/);
});

test("a certificate whose SANs no longer fit is enrolled again, since renewal keeps the old SANs", async () => {
  const { b } = withPassword("workers");
  const anchors = await b.fetchCaBundle();
  const oldTemplate = templateFor(server, {
    ...TABLE,
    node: { ...TABLE.node, ips: ["10.0.0.99"] },
  });
  const key = await generateKey("ecdsa-p256");
  const old = await b.sign({
    kind: server.name,
    profile: server.profile,
    csrPem: await buildCsr(oldTemplate, key),
    template: oldTemplate,
  });
  const fresh = await generateKey("ecdsa-p256");
  const rekeys = count("/1.0/rekey");
  const { chainPem: chain } = await renewal(b, anchors, {
    ...(await request(fresh)),
    currentCertPem: old,
    currentKeyPem: key.pem,
  });
  assert.deepEqual(verified(chain, fresh, anchors).ips, ["10.0.0.31"]);
  assert.equal(count("/1.0/rekey"), rekeys, "not a rekey");
});

test("a certificate from another CA is not sent over mTLS: refused with what to provide, or enrolled again", async () => {
  const other = await makeCa("someone else");
  const oldKey = await generateKey("ecdsa-p256");
  const { publicKey } = await toWebCrypto(oldKey);
  const foreign = await issueLeaf(other, {
    publicKey,
    cn: template.commonName,
    o: ["system:nodes"],
    dns: template.sans.dnsNames,
    ips: template.sans.ips,
    ekus: ["1.3.6.1.5.5.7.3.1"],
  });
  const fresh = await generateKey("ecdsa-p256");
  const req = { ...(await request(fresh)), currentCertPem: foreign, currentKeyPem: oldKey.pem };
  const { b: bare } = backend({});
  await assert.rejects(
    renewal(bare, await bare.fetchCaBundle(), req),
    /kubelet-server was not issued by this CA \(issuer "someone else"\), so it cannot be renewed: give a one-time token/,
  );
  const { b } = withPassword("workers");
  const anchors = await b.fetchCaBundle();
  const signs = count("/1.0/sign");
  verified((await renewal(b, anchors, req)).chainPem, fresh, anchors);
  assert.equal(count("/1.0/sign"), signs + 1, "enrolled with a minted token");
});

/** A kubelet-server certificate from `provisioner` and its key, as join leaves them. */
async function enrolled(provisioner: string): Promise<{ chain: string; key: NodeKey }> {
  const { b } = withPassword(provisioner);
  await b.fetchCaBundle();
  const key = await generateKey("ecdsa-p256");
  return { chain: await b.sign(await request(key)), key };
}

test("through a TLS-terminating proxy: auto falls back to a token signed by the current key (the key kept), token goes straight to it, mtls fails naming the setting", async () => {
  const { chain, key } = await enrolled("workers");
  const via = (renewAuth: "auto" | "mtls" | "token") =>
    backend({ urls: [proxy.url], renewAuth, tlsCaFile: proxy.tlsCaFile });
  const renewing = async (current: string, currentKey: NodeKey) => ({
    ...(await request(await generateKey("ecdsa-p256"))),
    currentCertPem: current,
    currentKeyPem: currentKey.pem,
  });

  const { b: auto, log } = via("auto");
  const anchors = await auto.fetchCaBundle();
  const seen = proxy.forwarded.length;
  const renews = count("/1.0/renew");
  const r1 = await renewal(auto, anchors, await renewing(chain, key));
  assert.deepEqual((await proxy.forwardedAtLeast(seen + 2)).slice(seen), [
    "POST /1.0/rekey",
    "POST /1.0/renew",
  ]);
  assert.equal(count("/1.0/renew"), renews + 1, "step-ca renewed once, by the token");
  assert.equal(r1.keptCurrentKey, true);
  assert.equal(
    r1.note,
    "renewed with a token signed by its key as mTLS was refused: the key is kept, step-ca has no token rekey",
  );
  const leaf1 = verified(r1.chainPem, key, anchors);
  assert.notEqual(leaf1.serial, parseCert(splitPemCertificates(chain)[0]!).serial);
  assert.deepEqual(log, [
    `CA kubernetes (step-ca ${proxy.url}) rekeying kubelet-server over mTLS: the CA did not get the client certificate (HTTP 400: The request could not be completed: missing client certificate.): renewing with a token signed by its key instead`,
  ]);

  const { b: token } = via("token");
  await token.fetchCaBundle();
  const before = proxy.forwarded.length;
  const r2 = await renewal(token, anchors, await renewing(r1.chainPem, key));
  assert.deepEqual(
    (await proxy.forwardedAtLeast(before + 1)).slice(before),
    ["POST /1.0/renew"],
    "no mTLS attempt",
  );
  assert.equal(
    r2.note,
    "renewed with a token signed by its key: the key is kept, step-ca has no token rekey",
  );
  verified(r2.chainPem, key, anchors);

  const { b: mtls } = via("mtls");
  await mtls.fetchCaBundle();
  await assert.rejects(renewal(mtls, anchors, await renewing(r2.chainPem, key)), (err: Error) => {
    assert.ok(err instanceof CaRefusedError);
    assert.equal(
      err.message,
      `CA kubernetes (step-ca ${proxy.url}) rekeying kubelet-server over mTLS: the CA did not get the client certificate (HTTP 400: The request could not be completed: missing client certificate.): a TLS-terminating proxy in front of step-ca? set --ca-renew-auth (config cas.kubernetes.renewAuth) to token or auto to renew with a token signed by the current key`,
    );
    return true;
  });
});

test("an expired certificate is renewed with a token, without any enrolment secret, where the provisioner allows renewal after expiry", async () => {
  const { chain, key } = await enrolled("brief-renewable");
  const leaf = parseCert(splitPemCertificates(chain)[0]!);
  await new Promise((r) => setTimeout(r, Math.max(0, leaf.notAfter.getTime() - Date.now()) + 1100));
  const { b } = backend({});
  const anchors = await b.fetchCaBundle();
  const renews = count("/1.0/renew");
  const signs = count("/1.0/sign");
  const r = await renewal(b, anchors, {
    ...(await request(await generateKey("ecdsa-p256"))),
    currentCertPem: chain,
    currentKeyPem: key.pem,
  });
  assert.equal(count("/1.0/renew"), renews + 1);
  assert.equal(count("/1.0/sign"), signs, "no enrolment");
  assert.equal(r.keptCurrentKey, true);
  const renewed = verified(r.chainPem, key, anchors);
  assert.ok(renewed.notAfter.getTime() > Date.now());

  // mtls alone cannot: the handshake would carry an expired certificate.
  const { b: mtls } = backend({ renewAuth: "mtls" });
  await mtls.fetchCaBundle();
  await assert.rejects(
    renewal(mtls, anchors, {
      ...(await request(await generateKey("ecdsa-p256"))),
      currentCertPem: chain,
      currentKeyPem: key.pem,
    }),
    new RegExp(
      `kubelet-server expired on ${leaf.notAfter.toISOString().replace(/\./g, "\\.")} and an expired certificate cannot authenticate the mTLS renewal \\(--ca-renew-auth \\(config cas\\.kubernetes\\.renewAuth\\) is mtls; auto or token renews it with a token where the provisioner allows renewal after expiry\\), so it cannot be renewed: give a one-time token`,
    ),
  );
});
