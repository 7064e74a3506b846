// A control plane moves its kubernetes and front-proxy CAs to new keys with an overlap (issue 14),
// against real CFSSL servers, one per CA: trust both, switch the signer, retire the old CA. After
// each phase `openssl verify -CAfile` checks every certificate of the CA against its installed
// bundle (ca.crt and each kubeconfig's certificate-authority-data; front-proxy-ca.crt), and during
// the overlap a certificate of the old CA and one of the new CA complete a TLS handshake as the
// API server and its clients do. Retiring is refused while a certificate chains only to the old CA.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CONTROL_PLANE_AUTH_KEYS } from "../../scripts/lib/args.js";
import { opensslPin, startCfssl, type CfsslCa } from "../helpers/cfssl.js";
import { runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { opensslVerifies } from "../helpers/openssl.js";
import {
  bundleCns,
  handshake,
  issuerOf,
  joinControlPlane,
  newCaKey,
  saKeyDir,
  startClusterCas,
  trustAdd,
} from "../helpers/rotation.js";
import { stoppedAfter } from "../helpers/fixture.js";

const started = stoppedAfter<CfsslCa>();

/** The kubeconfigs of a control plane whose client certificate the kubernetes CA signs. */
const KUBECONFIGS = ["admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf"];

const field = (text: string, key: string): string | undefined => {
  const data = new RegExp(`${key}: (\\S+)`).exec(text)?.[1];
  return data && Buffer.from(data, "base64").toString("utf8");
};

test("CA rotation on a control plane: the kubernetes and front-proxy CAs through trust both, switch the signer, retire", async () => {
  const cas = await startClusterCas(started);
  const { kubernetes: k8s, frontProxy: fp } = cas;
  const root = tempRoot("nj-cp-rotation-");
  const etc = join(root, "etc/node-join");
  await joinControlPlane({ name: "cp1", ip: "127.0.0.11", root }, cas, saKeyDir());
  const pki = join(root, "etc/kubernetes/pki");
  const caCrt = join(pki, "ca.crt");
  const fpCrt = join(pki, "front-proxy-ca.crt");
  const read = (f: string) => readFileSync(f, "utf8");
  const pair = (name: string) => read(join(pki, `${name}.crt`)) + read(join(pki, `${name}.key`));
  const kubelet = (kind: string) =>
    read(join(root, `var/lib/kubelet/pki/kubelet-${kind}-current.pem`));
  const kubeconfig = (f: string) => read(join(root, "etc/kubernetes", f));
  /** Every certificate the kubernetes CA signs on this node, by name, leaf first. */
  const kubernetesLeaves = (): [string, string][] => [
    ["apiserver", pair("apiserver")],
    ["apiserver-kubelet-client", pair("apiserver-kubelet-client")],
    ["kubelet-client", kubelet("client")],
    ["kubelet-server", kubelet("server")],
    ...KUBECONFIGS.map((f): [string, string] => [
      f,
      field(kubeconfig(f), "client-certificate-data")!,
    ]),
  ];
  /** openssl verify of each leaf against ca.crt and every kubeconfig's CA data (all the same). */
  const verifiesAll = (phase: string) => {
    const bundle = read(caCrt);
    for (const f of [...KUBECONFIGS, "kubelet.conf"])
      assert.equal(field(kubeconfig(f), "certificate-authority-data"), bundle, `${phase}: ${f}`);
    for (const [name, pem] of kubernetesLeaves())
      assert.ok(opensslVerifies(pem, caCrt), `${phase}: openssl verify ${name} against ca.crt`);
    assert.ok(opensslVerifies(pair("front-proxy-client"), fpCrt), `${phase}: front-proxy-client`);
  };
  verifiesAll("joined");

  // Phase 1: trust both, from the new certificates' files; the servers sign with the old keys.
  const nextK8s = newCaKey("kubernetes-2");
  const nextFp = newCaKey("front-proxy-ca-2");
  for (const [ca, file] of [
    ["kubernetes", nextK8s.cert],
    ["front-proxy", nextFp.cert],
  ] as const) {
    const add = await trustAdd(root, ca, file);
    assert.equal(add.code, 0, add.stderr);
    assert.equal(
      add.stdout.split("\n")[0],
      `CA ${ca}: trusting ${opensslPin(file)}; its bundle holds 2 certificate(s)`,
    );
  }
  assert.deepEqual(bundleCns(caCrt), ["kubernetes", "kubernetes-2"]);
  assert.deepEqual(bundleCns(fpCrt), ["front-proxy-ca", "front-proxy-ca-2"]);
  verifiesAll("phase 1");

  // Phase 2: switch the signers (each server restarted with its new key, here on a new port).
  const cfg = join(etc, "config.yaml");
  const switchSigner = async (old: CfsslCa, next: { cert: string; key: string }, key: string) => {
    await old.stop();
    const signer = await startCfssl({ ca: next });
    started.push(signer);
    signer.writeAuthKey(join(etc, key));
    writeFileSync(cfg, read(cfg).replace(old.url, signer.url));
  };
  await switchSigner(k8s, nextK8s, CONTROL_PLANE_AUTH_KEYS.kubernetes);
  const remove = (ca: string, pin: string, ...more: string[]) =>
    runCli(["trust", "remove", "--root", root, "--ca", ca, "--ca-cert-hash", pin, ...more]);
  const early = await remove("kubernetes", k8s.pin);
  assert.equal(early.code, 2, early.stderr);
  assert.match(
    early.stderr,
    new RegExp(
      `^node-join: error: CA kubernetes: kubelet-client \\(.*\\), kubelet-server \\(.*\\), apiserver \\(${pki}/apiserver\\.crt\\), apiserver-kubelet-client \\(${pki}/apiserver-kubelet-client\\.crt\\), admin\\.conf \\(.*\\), super-admin\\.conf \\(.*\\), controller-manager\\.conf \\(.*\\), scheduler\\.conf \\(.*\\) chains only to the CA certificate of ${k8s.pin}: renew it against the new signer first \\(node-join trust remove --renew\\), or wait until node-join renew has renewed them from the new CA, then remove the pin\\n$`,
    ),
  );
  const oldApiserver = pair("apiserver");
  const oldFpClient = pair("front-proxy-client");
  const oldKubeletClient = kubelet("client");
  const renewed = await runCli(["renew", "--root", root, "--force"]);
  assert.equal(renewed.code, 0, renewed.stderr);
  assert.deepEqual(bundleCns(caCrt), ["kubernetes-2", "kubernetes"], "the current signer first");
  for (const [name, pem] of kubernetesLeaves())
    assert.equal(issuerOf(pem), "CN = kubernetes-2", name);
  // The front-proxy CA still signs with its old key: renewed by it again.
  assert.equal(issuerOf(pair("front-proxy-client")), "CN = front-proxy-ca");
  verifiesAll("phase 2, kubernetes switched");
  // The overlap: the old CA's API server certificate with a kubelet client of the new CA, and the
  // new API server with the old one's kubelet client.
  await handshake(oldApiserver, pair("apiserver-kubelet-client"), caCrt);
  await handshake(pair("apiserver"), oldKubeletClient, caCrt);
  await switchSigner(fp, nextFp, CONTROL_PLANE_AUTH_KEYS.frontProxy);
  const fpRefresh = await runCli(["renew", "--root", root]);
  assert.equal(fpRefresh.code, 0, fpRefresh.stderr);
  assert.deepEqual(bundleCns(fpCrt), ["front-proxy-ca-2", "front-proxy-ca"]);
  verifiesAll("phase 2, front-proxy switched");
  // The API server (new kubernetes CA) takes a front-proxy client of the old front-proxy CA.
  await handshake(pair("apiserver"), oldFpClient, fpCrt, caCrt);

  // Phase 3: retire. The kubernetes CA's certificates were renewed: removing works at once.
  const k8sRetired = await remove("kubernetes", k8s.pin);
  assert.equal(k8sRetired.code, 0, k8sRetired.stderr);
  assert.equal(
    k8sRetired.stdout.split("\n")[0],
    `CA kubernetes: no longer trusting ${k8s.pin}; its bundle holds 1 certificate(s)`,
  );
  assert.deepEqual(bundleCns(caCrt), ["kubernetes-2"]);
  assert.ok(!opensslVerifies(oldApiserver, caCrt), "the old API server certificate is distrusted");
  // front-proxy-client still chains only to the old front-proxy CA: refused, then renewed first.
  const fpEarly = await remove("front-proxy", fp.pin);
  assert.equal(fpEarly.code, 2, fpEarly.stderr);
  assert.equal(
    fpEarly.stderr,
    `node-join: error: CA front-proxy: front-proxy-client (${pki}/front-proxy-client.crt) chains only to the CA certificate of ${fp.pin}: renew it against the new signer first (node-join trust remove --renew), or wait until node-join renew has renewed it from the new CA, then remove the pin\n`,
  );
  const fpRetired = await remove("front-proxy", fp.pin, "--renew");
  assert.equal(fpRetired.code, 0, fpRetired.stderr);
  assert.equal(
    fpRetired.stdout.split("\n")[0],
    `CA front-proxy: no longer trusting ${fp.pin}; renewed front-proxy-client first; its bundle holds 1 certificate(s)`,
  );
  assert.deepEqual(bundleCns(fpCrt), ["front-proxy-ca-2"]);
  assert.equal(issuerOf(pair("front-proxy-client")), "CN = front-proxy-ca-2");
  verifiesAll("phase 3");
  assert.ok(!opensslVerifies(oldFpClient, fpCrt), "the old front-proxy client is distrusted");
  await handshake(pair("apiserver"), pair("front-proxy-client"), fpCrt, caCrt);
  await handshake(pair("apiserver"), pair("apiserver-kubelet-client"), caCrt);
});
