// The contract every failing run must keep: the documented exit code, one error line naming the
// problem, the same in --json, and no file under the root changed.
import assert from "node:assert/strict";
import { json, runCli, type CliResult } from "./cli.js";
import { diffSnapshots, snapshot } from "./fs.js";

/**
 * Both kubelet certificates were renewed, client then server, each for a reason that `reason`
 * matches (the renew --json entries).
 */
export function assertKubeletRenewed(
  renewed: readonly { kind: string; reason: string }[],
  reason: RegExp,
): void {
  assert.deepEqual(
    renewed.map((x) => x.kind),
    ["kubelet-client", "kubelet-server"],
  );
  for (const x of renewed) assert.match(x.reason, reason);
}

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

/**
 * Text a hostile server sends to reach the operator's terminal: an OSC retitling the window (ESC
 * ... BEL), a CSI clearing the line, a CR then a forged line, a one-byte C1 CSI, a bidi override.
 */
export const HOSTILE_TEXT = "\x1b]0;owned\x07no\x1b[2K\rrenewed 2: all good \u202egnp.exe\x9b31m";

/** `text` (stderr, human output) shows HOSTILE_TEXT escaped: none of its control bytes raw. */
export function assertEscaped(text: string): void {
  for (const raw of ["\x1b", "\x07", "\r", "\u202e", "\x9b"])
    assert.ok(!text.includes(raw), `raw ${JSON.stringify(raw)} reached the terminal:\n${text}`);
  assert.ok(
    text.includes("\\x1b]0;owned\\x07no\\x1b[2K\\rrenewed 2: all good \\u202egnp.exe\\x9b31m"),
    `the hostile text is shown escaped:\n${text}`,
  );
}
