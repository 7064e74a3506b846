// The contract every failing run must keep: the documented exit code, one error line naming the
// problem, the same in --json, and no file under the root changed.
import assert from "node:assert/strict";
import { json, runCli, type CliResult } from "./cli.js";
import { diffSnapshots, snapshot } from "./fs.js";

export async function expectFailure(
  args: string[],
  code: number,
  message: RegExp,
  root: string,
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult> {
  const before = snapshot(root);
  const r = await runCli([...args, "--json"], { env });
  assert.equal(r.code, code, `exit ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(
    r.stderr
      .trim()
      .split("\n")
      .filter((l) => l.includes("error:")).length,
    1,
    "one error line",
  );
  const out = json<{ ok: boolean; exitCode: number; error: string }>(r);
  assert.equal(out.ok, false);
  assert.equal(out.exitCode, code);
  assert.match(out.error, message);
  assert.deepEqual(diffSnapshots(before, snapshot(root)), [], "no file under the root changed");
  return r;
}
