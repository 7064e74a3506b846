// The CA of the packaging training run (scripts/sea-train.mjs): a real `cfssl serve` on loopback,
// started by the test suite's own helper. Prints {url, pin, authKeyFile} as one JSON line, then
// stops the CA when its stdin closes (scripts/package.mjs holds it open for the training runs).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { startCfssl } from "../test/helpers/cfssl.js";

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
