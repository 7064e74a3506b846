// Reads certificates with openssl, independently of the agent's own parser.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface OpensslCert {
  cn: string;
  o: string[];
  dns: string[];
  ips: string[];
  ekus: string[];
  isCa: boolean;
}

const EKU_NAMES: Record<string, string> = {
  "TLS Web Server Authentication": "serverAuth",
  "TLS Web Client Authentication": "clientAuth",
};

export function opensslInfo(pem: string): OpensslCert {
  const text = execFileSync(
    "openssl",
    [
      "x509",
      "-noout",
      "-subject",
      "-nameopt",
      "RFC2253",
      "-ext",
      "subjectAltName,extendedKeyUsage,basicConstraints",
    ],
    { input: pem },
  ).toString();
  const subject = /^subject=(.*)$/m.exec(text)?.[1] ?? "";
  const rdns = subject.split(/(?<!\\),/).map((p) => p.split("="));
  const sanLine = /Subject Alternative Name:.*\n\s*(.*)/.exec(text)?.[1] ?? "";
  const sans = sanLine ? sanLine.split(", ") : [];
  const ekuLine = /Extended Key Usage:.*\n\s*(.*)/.exec(text)?.[1] ?? "";
  return {
    cn: rdns.find(([k]) => k === "CN")?.[1] ?? "",
    o: rdns.filter(([k]) => k === "O").map(([, v]) => v!),
    dns: sans.filter((s) => s.startsWith("DNS:")).map((s) => s.slice(4)),
    ips: sans.filter((s) => s.startsWith("IP Address:")).map((s) => s.slice(11)),
    ekus: ekuLine ? ekuLine.split(", ").map((e) => EKU_NAMES[e] ?? e) : [],
    isCa: /CA:TRUE/.test(text),
  };
}

/** True when openssl verifies `pem` (leaf first, intermediates after) against the CA file. */
export function opensslVerifies(pem: string, caFile: string): boolean {
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
  if (certs.length === 0) return false;
  const dir = mkdtempSync(join(tmpdir(), "nj-verify-"));
  try {
    writeFileSync(join(dir, "leaf.pem"), certs[0]!);
    const args = ["verify", "-CAfile", caFile];
    if (certs.length > 1) {
      writeFileSync(join(dir, "chain.pem"), certs.slice(1).join(""));
      args.push("-untrusted", join(dir, "chain.pem"));
    }
    execFileSync("openssl", [...args, join(dir, "leaf.pem")], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
