// The CA operators' guides (docs/ca-cfssl.md, docs/ca-step-ca.md) and the README's worker joins,
// run as written: every shell block marked "sh runnable" runs in order, in a temporary root,
// against the real CFSSL the guide itself sets up, or the real step-ca the harness starts and the
// guide configures. A broken command in a guide fails this test, naming the block.
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { X509Certificate } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  CFSSL_GUIDE_DIR,
  freePort,
  guideServeArgs,
  opensslPin,
  requireCommand,
} from "../helpers/cfssl.js";
import { cfsslWorkerFlags } from "../../scripts/lib/args.js";
import { binary, REPO, runCli, spawnCollect } from "../helpers/cli.js";
import { readDoc, type Doc } from "../helpers/docs.js";
import { startStepCa, type StepCaHandle } from "../helpers/stepca.js";

const tmp = mkdtempSync(join(tmpdir(), "nj-guides-"));
/** The CA host's file system (/etc/cfssl, /var/lib/cfssl) and the node's (--root). */
const caHost = join(tmp, "ca-host");
const root = join(tmp, "node");
/** The guide's files (docs/ca/cfssl/), the placeholders below applied to them too. */
const files = join(tmp, "files");
const bin = join(tmp, "bin");
const port = await freePort();
const caPem = join(caHost, "etc/cfssl/ca.pem");

/**
 * Every placeholder of the guides and what it becomes here, in the order applied: the one place
 * where what runs differs from what a user pastes.
 */
const PLACEHOLDERS: [string, () => string][] = [
  ["/etc/cfssl", () => join(caHost, "etc/cfssl")],
  ["/var/lib/cfssl", () => join(caHost, "var/lib/cfssl")],
  ["docs/ca/cfssl/", () => `${files}/`],
  ["-address 0.0.0.0 -port 8888", () => `-address 127.0.0.1 -port ${port}`],
  // The TLS server certificate's names: the test reaches the server at 127.0.0.1.
  ['"10.0.0.5"]', () => '"10.0.0.5", "127.0.0.1"]'],
  ["http://ca.lab:8888", () => `http://127.0.0.1:${port}`],
  ["node-join join ", () => `node-join join --root ${root} `],
  ["/etc/node-join", () => join(root, "etc/node-join")],
  ["sha256:<64 hex>", () => opensslPin(caPem)],
  // The README's next step on a real host; the kubelet is not this test's business.
  ["systemctl enable --now kubelet", () => ": systemctl enable --now kubelet"],
];

type Placeholders = [string, () => string][];

function substitute(text: string, table: Placeholders = PLACEHOLDERS): string {
  let out = text;
  for (const [placeholder, value] of table)
    if (out.includes(placeholder)) out = out.split(placeholder).join(value());
  return out;
}

interface Block {
  doc: string;
  line: number;
  background: boolean;
  text: string;
}

/**
 * The shell blocks marked runnable (```sh runnable, or ```sh runnable=background), also indented
 * in a list item (the indent taken off).
 */
export function runnableBlocks(doc: Doc): Block[] {
  const blocks: Block[] = [];
  for (const m of doc.text.matchAll(/^( *)```sh runnable(=background)?\n([\s\S]*?)^\1```$/gm)) {
    const line = doc.text.slice(0, m.index).split("\n").length;
    const indent = m[1]!;
    const text = m[3]!.replace(new RegExp(`^${indent}`, "gm"), "");
    blocks.push({ doc: doc.path, line, background: m[2] !== undefined, text });
  }
  return blocks;
}

const guide = readDoc("docs/ca-cfssl.md");
const readme = readDoc("README.md");
const background: ChildProcess[] = [];

after(() => {
  for (const c of background) if (c.exitCode === null && c.pid) process.kill(-c.pid, "SIGTERM");
  rmSync(tmp, { recursive: true, force: true });
});

/** `node-join` on the PATH, as the README installs it. */
function installOnPath(): void {
  mkdirSync(bin, { recursive: true });
  const [cmd, ...pre] = binary();
  writeFileSync(
    join(bin, "node-join"),
    `#!/bin/sh\nexec ${[cmd!, ...pre].map((a) => `'${a}'`).join(" ")} "$@"\n`,
    { mode: 0o755 },
  );
}

/** The README's join against step-ca (the other one is CFSSL's). */
const isStepCa = (b: Block) => b.text.includes("--ca-type step-ca");

function env(): NodeJS.ProcessEnv {
  const authKey = join(caHost, "etc/cfssl/auth.key");
  return {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: process.env.HOME,
    // The README's variable: the key the CA operator handed over.
    ...(existsSync(authKey) ? { CFSSL_AUTH_KEY_HEX: readFileSync(authKey, "utf8").trim() } : {}),
  };
}

/** Ready when the info endpoint answers; a server that exits first fails at once. */
async function untilServing(c: ChildProcess, url: string, what: string): Promise<void> {
  for (;;) {
    if (c.exitCode !== null) assert.fail(`${what}: exited ${c.exitCode}`);
    try {
      execFileSync("curl", ["-sfk", "-o", "/dev/null", "-d", "{}", `${url}/api/v1/cfssl/info`]);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function runBlock(
  b: Block,
  table: Placeholders = PLACEHOLDERS,
  blockEnv: () => NodeJS.ProcessEnv = env,
): Promise<string> {
  const script = substitute(b.text, table);
  const where = `${b.doc}:${b.line}`;
  if (b.background) {
    const c = spawn("bash", ["-euo", "pipefail", "-c", script], {
      env: env(),
      detached: true,
      stdio: ["ignore", "ignore", "ignore"],
    });
    background.push(c);
    await untilServing(c, `http://127.0.0.1:${port}`, `${where}:\n${script}`);
    return "";
  }
  const r = await spawnCollect("bash", ["-euo", "pipefail", "-c", script], { env: blockEnv() });
  assert.equal(
    r.code,
    0,
    `${where} failed (exit ${r.code}):\n${script}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`,
  );
  return r.stdout;
}

test("the CFSSL guide sets up a CA; the README's worker join joins it, over HTTP and the guide's TLS", async () => {
  for (const [cmd, pkg] of [
    ["cfssl", "golang-cfssl"],
    ["cfssljson", "golang-cfssl"],
    ["sqlite3", "sqlite3"],
    ["openssl", "openssl"],
    ["curl", "curl"],
  ] as const)
    requireCommand(cmd, pkg);
  mkdirSync(caHost, { recursive: true });
  mkdirSync(root, { recursive: true });
  cpSync(CFSSL_GUIDE_DIR, files, { recursive: true });
  for (const f of readdirSync(files))
    writeFileSync(join(files, f), substitute(readFileSync(join(files, f), "utf8")));
  installOnPath();

  const guideBlocks = runnableBlocks(guide);
  const joinBlocks = runnableBlocks(readme).filter((b) => !isStepCa(b));
  // The markers are what makes a block run: losing them must fail too.
  assert.ok(guideBlocks.length >= 7, `docs/ca-cfssl.md: ${guideBlocks.length} runnable blocks`);
  assert.equal(joinBlocks.length, 1, "README.md: the CFSSL worker join block is runnable");
  const outputs: string[] = [];
  for (const b of [...guideBlocks, ...joinBlocks]) outputs.push(await runBlock(b));

  const pin = opensslPin(caPem);
  // The pin recipe and the probe print the pin as --ca-cert-hash takes it.
  assert.ok(
    outputs.some((o) => o.trim() === pin),
    `no block printed the pin ${pin} alone`,
  );
  assert.ok(
    outputs.some((o) => o.includes(pin) && /compare/i.test(o)),
    "probe shows the pin",
  );
  // The worker joined: its client certificate carries the node's group.
  const client = join(root, "var/lib/kubelet/pki/kubelet-client-current.pem");
  const subject = execFileSync("openssl", ["x509", "-in", client, "-noout", "-subject"], {
    encoding: "utf8",
  });
  assert.match(subject, /O ?= ?system:nodes/);
  assert.ok(existsSync(join(root, "etc/kubernetes/kubelet.conf")));
  // The TLS section: cfssl serve with the guide's server certificate, a node trusting its TLS CA.
  const etc = join(caHost, "etc/cfssl");
  const tlsPort = await freePort();
  const tls = spawn(
    "cfssl",
    [
      ...guideServeArgs({
        "-address": "127.0.0.1",
        "-port": String(tlsPort),
        "-ca": join(etc, "ca.pem"),
        "-ca-key": join(etc, "ca-key.pem"),
        "-config": join(etc, "ca-config.json"),
        "-db-config": join(etc, "db-config.json"),
      }),
      `-tls-cert=${join(etc, "tls-server.pem")}`,
      `-tls-key=${join(etc, "tls-server-key.pem")}`,
    ],
    { detached: true, stdio: "ignore" },
  );
  background.push(tls);
  await untilServing(tls, `https://127.0.0.1:${tlsPort}`, "cfssl serve -tls-cert");
  const tlsRoot = join(tmp, "tls-node");
  const r = await runCli([
    "join",
    "--root",
    tlsRoot,
    ...cfsslWorkerFlags(
      { url: `https://127.0.0.1:${tlsPort}`, pin },
      {
        "ca-tls-file": join(etc, "tls-ca.pem"),
        "ca-auth-key-file": join(root, "etc/node-join/ca-auth.key"),
        "client-profile": "kubelet-client",
        "serving-profile": "kubelet-serving",
      },
    ),
  ]);
  assert.equal(r.code, 0, r.stderr);
  // The CA recorded what it signed in the guide's certificate database (revocation needs it).
  const rows = execFileSync(
    "sqlite3",
    [join(caHost, "var/lib/cfssl/certs.db"), "SELECT count(*) FROM certificates"],
    { encoding: "utf8" },
  );
  assert.equal(rows.trim(), "4");
});

test("the systemd unit runs the guide's cfssl serve line", () => {
  const serve = runnableBlocks(guide).filter((b) => b.background);
  assert.equal(serve.length, 1);
  const line = serve[0]!.text
    .replace(/\\\n\s*/g, "")
    .trim()
    .replace(/\s+/g, " ");
  const unit = readFileSync(join(CFSSL_GUIDE_DIR, "cfssl-serve.service"), "utf8");
  assert.match(unit, /^ExecStart=.*$/m);
  assert.equal(unit.match(/^ExecStart=(.*)$/m)![1], `/usr/bin/${line}`);
});

test("the step-ca guide's provisioner fragments name its templates and force O=system:nodes", () => {
  const dir = join(REPO, "docs/ca/step-ca");
  for (const f of ["provisioner-nodes.json", "provisioner-machines.json"]) {
    const p = JSON.parse(readFileSync(join(dir, f), "utf8")) as {
      claims: Record<string, unknown>;
      options: { x509: { templateFile: string; templateData: { organization: string[] } } };
    };
    const { templateFile, templateData } = p.options.x509;
    // The guide copies nodes.tpl to /etc/step-ca/templates/; the tests' step-ca reads it here.
    assert.equal(templateFile, "/etc/step-ca/templates/nodes.tpl", f);
    assert.deepEqual(templateData.organization, ["system:nodes"], f);
    assert.equal(p.claims["allowRenewalAfterExpiry"], true, f);
    assert.equal(p.claims["disableRenewal"], false, f);
  }
  const tpl = readFileSync(join(dir, "nodes.tpl"), "utf8");
  assert.match(tpl, /"organization": \{\{ toJson \.organization \}\}/);
  assert.doesNotMatch(tpl, /Insecure\.CR\.Subject/);
  // The TPM setup's X5C template (docs/tpm.md) is nodes.tpl behind its refusal of Kubernetes
  // identities: the two cannot drift apart.
  const x5c = readFileSync(join(dir, "x5c-nodes.tpl"), "utf8");
  const guard = x5c.slice(0, x5c.length - tpl.length);
  assert.equal(x5c.slice(guard.length), tpl, "x5c-nodes.tpl ends with nodes.tpl");
  assert.match(
    guard,
    /\{\{- if hasPrefix "system:" \.AuthorizationCrt\.Subject\.CommonName \}\}\n\{\{- fail /,
  );
});

const stepGuide = readDoc("docs/ca-step-ca.md");

/**
 * The step-ca guide's placeholders, for a node root (the guide's token join and the README's
 * password join each get their own): the one place where what runs differs from what a user
 * pastes. The CA is the harness's step-ca (test/helpers/stepca.ts, built from smallstep's 0.19
 * sources), which its `stepinit` set up as `step ca init` and `step ca provisioner add --create`
 * do (root, intermediate, ca.json, the JWK provisioner's key and encrypted key); stepinit also
 * mints the one-time tokens with smallstep's own token code, where the guide runs `step ca token`.
 */
function stepPlaceholders(ca: StepCaHandle, node: string, stepHost: string): Placeholders {
  const nodes = ca.provisioners.find((p) => p.name === "nodes")!;
  return [
    [
      "step ca provisioner add nodes --create --ca-config /etc/step-ca/config/ca.json",
      () => ": made by stepinit",
    ],
    [
      "step ca token ",
      () =>
        `${ca.bin.stepinit} token -dir ${join(ca.dir, "ca")} -password-file ${nodes.passwordFile} -ca-url ${ca.url} -subject `,
    ],
    ["/etc/step-ca/certs/root_ca.crt", () => ca.rootFile],
    ["/etc/step-ca/config/ca.json", () => ca.configFile],
    ["/etc/step-ca/templates/", () => join(stepHost, "templates/")],
    ["docs/ca/step-ca/", () => join(stepHost, "files/")],
    // the test restarts the harness's step-ca after the block (runStepBlocks)
    ["systemctl restart step-ca", () => ": systemctl restart step-ca"],
    ["https://ca.lab:9000", () => ca.url],
    ["<64 hex>", () => ca.rootFingerprint],
    ["node-join join ", () => `node-join join --root ${node} `],
    ["/etc/node-join", () => join(node, "etc/node-join")],
    ["systemctl enable --now kubelet", () => ": systemctl enable --now kubelet"],
  ];
}

/** The client certificate's subject and lifetime in hours. */
function clientCert(node: string): { subject: string; hours: number } {
  const c = new X509Certificate(
    readFileSync(join(node, "var/lib/kubelet/pki/kubelet-client-current.pem")),
  );
  return {
    subject: c.subject,
    hours: Math.round((Date.parse(c.validTo) - Date.parse(c.validFrom)) / 3_600_000),
  };
}

test("the step-ca guide configures its provisioner, mints tokens and joins with them; the README's step-ca worker join joins with the password", async () => {
  for (const [cmd, pkg] of [
    ["openssl", "openssl"],
    ["jq", "jq"],
  ] as const)
    requireCommand(cmd, pkg);
  installOnPath();
  // Before the guide's block: the harness's provisioner with its own claims (1h certificates)
  // and the control-plane template (O from the CSR): what the guide changes is seen below.
  const ca = await startStepCa({
    provisioners: [{ name: "nodes", claims: { defaultTLSCertDuration: "1h" } }],
  });
  try {
    const stepHost = join(tmp, "step-ca-host");
    const guideRoot = join(tmp, "step-node-tokens");
    const readmeRoot = join(tmp, "step-node-password");
    mkdirSync(join(stepHost, "files"), { recursive: true });
    const guideTable = stepPlaceholders(ca, guideRoot, stepHost);
    const dir = join(REPO, "docs/ca/step-ca");
    for (const f of readdirSync(dir))
      writeFileSync(
        join(stepHost, "files", f),
        substitute(readFileSync(join(dir, f), "utf8"), guideTable),
      );
    const password = ca.provisioners.find((p) => p.name === "nodes")!.password;
    const stepEnv = () => ({ ...env(), PROVISIONER_PASSWORD: password });

    const blocks = runnableBlocks(stepGuide);
    const readmeBlocks = runnableBlocks(readme).filter(isStepCa);
    assert.ok(blocks.length >= 3, `docs/ca-step-ca.md: ${blocks.length} runnable blocks`);
    assert.equal(readmeBlocks.length, 1, "README.md: the step-ca worker join block is runnable");
    const outputs: string[] = [];
    for (const b of blocks) {
      outputs.push(await runBlock(b, guideTable, stepEnv));
      if (b.text.includes("systemctl restart step-ca")) await ca.restart();
    }
    assert.ok(
      outputs.some((o) => o.trim() === ca.rootFingerprint),
      `no block printed the fingerprint ${ca.rootFingerprint} alone`,
    );
    // The token join, before the provisioner's claims were changed: 1h.
    assert.ok(existsSync(join(guideRoot, "etc/kubernetes/kubelet.conf")));
    assert.match(clientCert(guideRoot).subject, /O=system:nodes/);
    // The guide's provisioner block: its claims and the template fixing O.
    const cfg = JSON.parse(readFileSync(ca.configFile, "utf8")) as {
      authority: {
        provisioners: {
          name: string;
          claims: Record<string, unknown>;
          options: { x509: { templateFile: string } };
        }[];
      };
    };
    const nodes = cfg.authority.provisioners.find((p) => p.name === "nodes")!;
    assert.equal(nodes.options.x509.templateFile, join(stepHost, "templates/nodes.tpl"));
    assert.equal(nodes.claims["defaultTLSCertDuration"], "24h");

    for (const b of readmeBlocks)
      await runBlock(b, stepPlaceholders(ca, readmeRoot, stepHost), stepEnv);
    assert.ok(existsSync(join(readmeRoot, "etc/kubernetes/kubelet.conf")));
    const c = clientCert(readmeRoot);
    assert.match(c.subject, /O=system:nodes/);
    assert.equal(c.hours, 24, "the guide's claims (defaultTLSCertDuration 24h) are in force");
    assert.equal(clientCert(guideRoot).hours, 1, "the token join came before them");
  } finally {
    await ca.stop();
  }
});
