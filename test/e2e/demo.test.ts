// `npm run demo` as a user runs it: it joins a worker against a throwaway CFSSL CA, and leaves
// nothing behind, the CA's private key least of all, however it ends; NODE_JOIN_DEMO_KEEP=1 keeps
// it and says where.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";

interface Demo {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs scripts/demo.sh with its own $TMPDIR, in a process group of its own; `interruptOn`: the
 * group gets SIGINT (Ctrl-C) when stdout shows it.
 */
function demo(tmp: string, env: NodeJS.ProcessEnv = {}, interruptOn?: RegExp): Promise<Demo> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(REPO, "scripts/demo.sh")], {
      env: { ...process.env, TMPDIR: tmp, ...env },
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let sent = false;
    const onOutput = () => {
      if (interruptOn && !sent && interruptOn.test(stdout + stderr)) {
        sent = true;
        process.kill(-child.pid!, "SIGINT");
      }
    };
    child.stdout.on("data", (d) => ((stdout += d), onOutput()));
    child.stderr.on("data", (d) => ((stderr += d), onOutput()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const lastLine = (s: string) => s.trimEnd().split("\n").at(-1);

test("the demo joins a worker and removes its directory, the CA key with it", async () => {
  const tmp = tempRoot("nj-demo-");
  const r = await demo(tmp);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^joined worker node demo-worker: issued 2 certificate\(s\)/m);
  assert.match(r.stdout, /^\$ node-join status --root /m);
  const dir = /^# removed (\S+): /m.exec(r.stdout)?.[1];
  assert.ok(dir?.startsWith(join(tmp, "node-join-demo.")), r.stdout);
  assert.equal(
    lastLine(r.stdout),
    `# removed ${dir}: the demo CA (its private key included) and the joined root`,
  );
  assert.deepEqual(readdirSync(tmp), []);
  // Quiet: no npm or apt chatter, only node-join's own progress lines.
  assert.deepEqual(
    r.stderr.split("\n").filter((l) => l && !l.startsWith("node-join: ")),
    [],
  );
});

test("Ctrl-C in the middle of the demo still removes its directory", async () => {
  const tmp = tempRoot("nj-demo-");
  const r = await demo(tmp, {}, /node-join: requesting /);
  assert.notEqual(r.code, 0);
  assert.match(lastLine(r.stdout)!, /^# removed \S+: the demo CA/);
  assert.deepEqual(readdirSync(tmp), []);
});

test("NODE_JOIN_DEMO_KEEP=1 keeps the directory and says where it is", async () => {
  const tmp = tempRoot("nj-demo-");
  const r = await demo(tmp, { NODE_JOIN_DEMO_KEEP: "1" });
  assert.equal(r.code, 0, r.stderr);
  const dir = /^# kept (\S+): /m.exec(r.stdout)?.[1];
  assert.equal(
    lastLine(r.stdout),
    `# kept ${dir}: the demo CA (its private key included) and the joined root; rm -rf it when done`,
  );
  const ca = readdirSync(dir!).find((n) => n.startsWith("nj-cfssl-"));
  assert.ok(ca && existsSync(join(dir!, ca, "ca-key.pem")), readdirSync(dir!).join(" "));
  rmSync(tmp, { recursive: true, force: true });
});
