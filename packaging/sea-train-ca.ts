// The CA of the packaging training run (packaging/sea-train.mjs): a throwaway `cfssl serve` on
// loopback (scripts/lib/cfssl.ts, the one the tests use too). Prints {url, pin, authKeyFile} as one
// JSON line, then stops the CA when its stdin closes (packaging/package.mjs holds it open for the
// training runs).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { startCfssl } from "../scripts/lib/cfssl.js";

const ca = await startCfssl();
const authKeyFile = ca.writeAuthKey(join(ca.dir, "train-auth.key"));
process.stdout.write(`${JSON.stringify({ url: ca.url, pin: ca.pin, authKeyFile })}\n`);
process.stdin.resume();
process.stdin.on("end", () => {
  void ca.stop().then(() => {
    rmSync(ca.dir, { recursive: true, force: true });
    process.exit(0);
  });
});
