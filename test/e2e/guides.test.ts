// The CA operator's guide (docs/ca-cfssl.md) and the README's worker join, run as written: every
// shell block marked "sh runnable" runs in order, in a temporary root, against the real CFSSL the
// guide itself sets up. A broken command in the guide fails this test, naming the block.
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

function substitute(text: string): string {
  let out = text;
  for (const [placeholder, value] of PLACEHOLDERS)
    if (out.includes(placeholder)) out = out.split(placeholder).join(value());
  return out;
}

interface Block {
  doc: string;
  line: number;
  background: boolean;
  text: string;
}

/** The shell blocks marked runnable (```sh runnable, or ```sh runnable=background). */
export function runnableBlocks(doc: Doc): Block[] {
  const blocks: Block[] = [];
  for (const m of doc.text.matchAll(/^```sh runnable(=background)?\n([\s\S]*?)^```$/gm)) {
    const line = doc.text.slice(0, m.index).split("\n").length;
    blocks.push({ doc: doc.path, line, background: m[1] !== undefined, text: m[2]! });
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

async function runBlock(b: Block): Promise<string> {
  const script = substitute(b.text);
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
  const r = await spawnCollect("bash", ["-euo", "pipefail", "-c", script], { env: env() });
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
  mkdirSync(bin, { recursive: true });
  cpSync(CFSSL_GUIDE_DIR, files, { recursive: true });
  for (const f of readdirSync(files))
    writeFileSync(join(files, f), substitute(readFileSync(join(files, f), "utf8")));
  // `node-join` on the PATH, as the README installs it.
  const [cmd, ...pre] = binary();
  writeFileSync(
    join(bin, "node-join"),
    `#!/bin/sh\nexec ${[cmd!, ...pre].map((a) => `'${a}'`).join(" ")} "$@"\n`,
    { mode: 0o755 },
  );

  const guideBlocks = runnableBlocks(guide);
  const joinBlocks = runnableBlocks(readme);
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
});
