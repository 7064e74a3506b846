// node-join with the host's clock moved by libfaketime (Debian faketime, scripts/deps.sh): the
// child inherits it; FAKETIME_NO_CACHE makes each time() call read the setting anew. The CAs the
// tests started before keep the true time.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { binary, spawnCollect, type Spawned } from "./cli.js";

/** Fails loudly where faketime is missing: scripts/deps.sh installs it. */
export function needFaketime(): void {
  execFileSync("faketime", ["-f", "+0", "true"]);
}

/** node-join with the host's clock at `spec` (faketime's "@1970-01-02 00:00:00", "+20y", "-3d"). */
export function atClock(
  spec: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<Spawned> {
  return spawnCollect("faketime", ["-f", spec, ...binary(), ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, FAKETIME_NO_CACHE: "1", ...env },
  });
}

/**
 * On a joined root: status and renew at 1970, renew 20 years ahead. Each exits 11 naming the clock
 * (the CA's Date, for the one ahead: `caType` names the CA as the message does), none "expired".
 */
export async function expectClockNotSetOnJoined(root: string, caType: string): Promise<void> {
  const st = await atClock("@1970-01-02 00:00:00", ["status", "--root", root]);
  assert.equal(st.code, 11, st.stdout + st.stderr);
  assert.match(st.stdout, /^clock: not set: the host's clock reads 1970-01-02/m);
  const renew = await atClock("@1970-01-02 00:00:00", ["renew", "--root", root, "--force"]);
  assert.equal(renew.code, 11, renew.stderr);
  assert.match(renew.stderr, /the host's clock reads 1970-01-02\S+, before .*the clock is not set/);
  const ahead = await atClock("+20y", ["renew", "--root", root]);
  assert.equal(ahead.code, 11, ahead.stderr);
  const named = new RegExp(`\\S+ ahead of CA kubernetes \\(${caType} \\S+\\) \\(its Date: \\S+\\)`);
  assert.match(ahead.stderr, named);
  assert.doesNotMatch(ahead.stderr, /expired at/);
}
