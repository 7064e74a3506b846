// The service-account key pair a control plane is handed (kubeadm's sa.key and sa.pub): every
// control plane of a cluster shares one, so the operator generates it once, off the node.
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempRoot } from "./fs.js";

/**
 * Writes a fresh RSA 2048 pair into `dir` (made if missing): sa.key as kubeadm writes it (PKCS#1,
 * 0600), sa.pub as SPKI.
 */
export function writeSaKeys(dir: string): { key: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  mkdirSync(dir, { recursive: true });
  const key = join(dir, "sa.key");
  const pub = join(dir, "sa.pub");
  writeFileSync(key, privateKey.export({ format: "pem", type: "pkcs1" }), { mode: 0o600 });
  writeFileSync(pub, publicKey.export({ format: "pem", type: "spki" }));
  return { key, pub };
}

/** A new temporary directory holding sa.key and sa.pub. */
export function saKeyDir(prefix = "nj-sa-"): string {
  const dir = tempRoot(prefix);
  writeSaKeys(dir);
  return dir;
}
