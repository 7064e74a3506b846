// A step-ca impostor (issue 20, finding 1): another node of the cluster answers at the CA's address
// with a certificate the real step-ca issued it, which chains to the pinned root and names the
// CA's address, and offers its own root beside the real one in GET /roots. The certificates come
// from a real step-ca: a second worker joined with --ip 127.0.0.1 (its kubelet serving
// certificate), and a client that enrolled for 127.0.0.1 through the provisioner that keeps the
// CSR's subject. The impostor itself is an attacker's HTTPS server, as it is in the wild.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:https";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import {
  makeStepCaCert,
  startStepCa,
  stepCaRequest,
  stepWorkerJoin,
  type StepCaHandle,
} from "../helpers/stepca.js";

let ca: StepCaHandle;
let evilRootPem: string;
before(async () => {
  ca = await startStepCa();
  evilRootPem = readFileSync(makeStepCaCert(ca, "evil-root", "evil-root").cert, "utf8");
});
after(async () => ca?.stop());

/** A worker joined through the real step-ca; its root. */
async function joinWorker(name: string, ip: string): Promise<string> {
  const root = tempRoot(`nj-impostor-${name}-`);
  const tokens = [
    await ca.mintToken("workers", `system:node:${name}`, [name, ip]),
    await ca.mintToken("workers", `system:node:${name}`, []),
  ];
  const j = await runCli(stepWorkerJoin(root, ca, { "node-name": name, ip }), {
    env: { NODE_JOIN_CA_TOKEN: tokens.join("\n") },
  });
  assert.equal(j.code, 0, j.stderr);
  return root;
}

/** The certificate chain and key of a PEM file that holds both (the kubelet's -current.pem). */
function splitCredentials(pem: string): { cert: string; key: string } {
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n/.exec(
    pem,
  );
  assert.ok(key, "the file holds a key");
  return { cert: pem.replace(key[0], ""), key: key[0] };
}

/**
 * A certificate for 127.0.0.1 from step-ca's control-plane provisioner (it keeps the CSR's O):
 * no Kubernetes name in it, what any holder of an enrolment secret can get.
 */
async function enrolledFor127(): Promise<{ cert: string; key: string }> {
  const keyFile = join(ca.dir, "impostor.key");
  const csr = execFileSync("openssl", [
    ...["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", keyFile, "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
  ]).toString();
  const ott = await ca.mintToken("control-plane", "127.0.0.1", ["127.0.0.1"]);
  const r = await stepCaRequest(ca, "/1.0/sign", { body: { csr, ott } });
  assert.equal(r.status, 201, r.body);
  return { cert: (r.json.certChain as string[]).join(""), key: readFileSync(keyFile, "utf8") };
}

interface Impostor {
  requests: string[];
  close(): Promise<void>;
}

/** At the CA's port: the real root for /root/<fingerprint>, [real root, evil root] for /roots. */
async function impostorAt(port: number, tls: { cert: string; key: string }): Promise<Impostor> {
  const requests: string[] = [];
  const server: Server = createServer(tls, (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.url === `/root/${ca.rootFingerprint}`) send(200, { ca: ca.rootPem });
    else if (req.url === "/roots") send(201, { crts: [ca.rootPem, evilRootPem] });
    else send(404, { status: 404, message: "not found" });
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", ok);
  });
  return {
    requests,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

function snapshot(root: string): Record<string, string> {
  const files = [
    "etc/kubernetes/pki/ca.crt",
    "etc/kubernetes/kubelet.conf",
    "var/lib/kubelet/pki/kubelet-client-current.pem",
    "var/lib/kubelet/pki/kubelet-server-current.pem",
  ];
  return Object.fromEntries(files.map((f) => [f, readFileSync(join(root, f), "utf8")]));
}

test("a step-ca impostor with another node's certificate cannot plant a root: its TLS certificate is refused as not the CA's (a worker's kubelet serving certificate; a client's from a provisioner), before any request; the real CA's extra roots are only offered", async () => {
  const victim = await joinWorker("w1", "10.0.0.21");
  // The attacker: a second worker that asked for the CA's address as one of its IPs.
  const attacker = await joinWorker("w2", "127.0.0.1");
  const serving = splitCredentials(
    readFileSync(join(attacker, "var/lib/kubelet/pki/kubelet-server-current.pem"), "utf8"),
  );
  const enrolled = await enrolledFor127();
  const before = snapshot(victim);
  await ca.pause();
  try {
    const cases: [string, { cert: string; key: string }, RegExp][] = [
      [
        "a worker's kubelet serving certificate",
        serving,
        /its TLS certificate "CN=system:node:w2" carries CN "system:node:w2", an identity the cluster's CAs issue to nodes and cluster components, never to a CA server: not the CA's own certificate; refused$/,
      ],
      [
        "a certificate enrolled through a provisioner",
        enrolled,
        /its TLS certificate "CN=127\.0\.0\.1" was issued through a step-ca provisioner \(extension 1\.3\.6\.1\.4\.1\.37476\.9000\.64\.1\), as every enrolled client's is; step-ca's own has none .*: not the CA's own certificate; refused$/,
      ],
    ];
    for (const [what, tls, reason] of cases) {
      const impostor = await impostorAt(ca.port, tls);
      try {
        for (const args of [[], ["--force"]]) {
          const r = await runCli(["renew", "--root", victim, ...args]);
          assert.equal(r.code, 5, `${what} ${args}: ${r.stderr}`);
          const last = r.stderr.trimEnd().split("\n").pop()!;
          assert.match(last, /^node-join: error: CA kubernetes \(step-ca https:\/\/127\.0\.0\.1:/);
          assert.match(last, reason, what);
          assert.doesNotMatch(r.stderr, /evil-root/);
          assert.deepEqual(snapshot(victim), before, `${what} ${args}: nothing changed`);
        }
        // The root is fetched unverified and checked against the fingerprint (step's bootstrap);
        // the verified handshake that follows fails before any request reaches the impostor.
        assert.deepEqual(
          [...new Set(impostor.requests)],
          [`GET /root/${ca.rootFingerprint}`],
          what,
        );
      } finally {
        await impostor.close();
      }
    }
  } finally {
    await ca.restart();
  }
  // The real CA is still trusted as before.
  const ok = await runCli(["renew", "--root", victim]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(snapshot(victim), before);
});

test("a root the real step-ca serves beside the pinned one is offered, never trusted: not in ca.crt nor kubelet.conf, trust list names it with the command that would trust it", async () => {
  const victim = await joinWorker("w3", "10.0.0.23");
  const before = snapshot(victim);
  const config = JSON.parse(readFileSync(ca.configFile, "utf8")) as Record<string, unknown>;
  const evilFile = join(ca.dir, "evil-root.crt");
  config.root = [ca.rootFile, evilFile];
  writeFileSync(ca.configFile, JSON.stringify(config, null, 2));
  await ca.restart();
  for (const args of [[], ["--force"]]) {
    const r = await runCli(["renew", "--root", victim, ...args]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /WARNING: CA kubernetes \(step-ca https:\/\/127\.0\.0\.1:\d+\): offers CA certificate "CN=evil-root" \(sha256:[0-9a-f]{64}\) that no anchor of this node names: not trusted, not installed/,
    );
    const now = snapshot(victim);
    assert.equal(now["etc/kubernetes/pki/ca.crt"], before["etc/kubernetes/pki/ca.crt"]);
    assert.equal(now["etc/kubernetes/kubelet.conf"], before["etc/kubernetes/kubelet.conf"]);
    assert.doesNotMatch(now["var/lib/kubelet/pki/kubelet-client-current.pem"]!, /evil/);
  }
  const list = await runCli(["trust", "list", "--root", victim]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(
    list.stdout,
    /\n {2}(sha256:[0-9a-f]{64}) \(offered\)\n {4}CN=evil-root, expires \S+; offered by the CA server, not trusted: check this pin with the CA's operator, then node-join trust add --ca kubernetes --ca-cert-hash \1\n/,
  );
  const json = await runCli(["trust", "list", "--root", victim, "--json"]);
  const rows = (
    JSON.parse(json.stdout) as { cas: { pins: { source: string; inBundle: boolean }[] }[] }
  ).cas[0]!.pins;
  assert.deepEqual(
    rows.map((p) => [p.source, p.inBundle]),
    [
      ["fingerprint", true],
      ["offered", false],
    ],
  );
  config.root = [ca.rootFile];
  writeFileSync(ca.configFile, JSON.stringify(config, null, 2));
  await ca.restart();
});
