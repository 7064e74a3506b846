// Every pin recipe a user copies (README.md, docs/*.md, cloud-init/*) prints the pin as
// --ca-cert-hash takes it, `sha256:<64 hex>`, equal to node-join's own pin of the same certificate:
// run with the real openssl on an RSA and an EC CA certificate. `openssl dgst` alone prints
// `SHA2-256(stdin)= …` on OpenSSL 3, which node-join refuses (kubeadm's docs add the same `sed`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { certPin, parseCert } from "../../agent/pki/x509.js";
import { recipeSources } from "../helpers/docs.js";
import { tempRoot } from "../helpers/fs.js";

interface Recipe {
  readonly where: string;
  readonly command: string;
}

/** Every `openssl x509 … -pubkey …` pipeline, joined across comment lines and table escapes. */
function recipes(): Recipe[] {
  return recipeSources().flatMap((d) => {
    const text = d.text
      .replace(/\\\|/g, "|") // a pipe inside a Markdown table cell
      .replace(/\|\n#\s+/g, "| "); // a pipeline continued on the next comment line (YAML, sh)
    return [...text.matchAll(/openssl x509 [^`\n]*-pubkey[^`\n]*/g)].map((m) => ({
      where: d.path,
      command: m[0].trim().replace(/,$/, ""),
    }));
  });
}

function caCert(dir: string, name: string, keyArgs: string[]): string {
  const cert = join(dir, `${name}.pem`);
  execFileSync("openssl", [
    "req",
    "-x509",
    ...keyArgs,
    "-nodes",
    "-keyout",
    join(dir, `${name}-key.pem`),
    "-out",
    cert,
    "-subj",
    `/CN=${name}`,
    "-days",
    "1",
  ]);
  return cert;
}

test("every pin recipe in README, docs and cloud-init prints node-join's sha256:<hex> pin", () => {
  const found = recipes();
  const where = new Set(found.map((r) => r.where));
  for (const f of ["README.md", "docs/ca-cfssl.md", "cloud-init/worker.yaml"])
    assert.ok(where.has(f), `a pin recipe in ${f} (found in: ${[...where].join(", ")})`);
  const dir = tempRoot("nj-pin-recipes-");
  const certs = [
    caCert(dir, "rsa-ca", ["-newkey", "rsa:2048"]),
    caCert(dir, "ec-ca", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
  ];
  for (const r of found) {
    assert.match(r.command, /^openssl x509 -in \S+ /, `${r.where}: ${r.command}`);
    for (const cert of certs) {
      const command = r.command.replace(/^openssl x509 -in \S+ /, `openssl x509 -in '${cert}' `);
      const out = execFileSync("sh", ["-c", command], { encoding: "utf8" }).trim();
      const pin = certPin(parseCert(readFileSync(cert, "utf8")));
      assert.match(out, /^sha256:[0-9a-f]{64}$/, `${r.where}: ${r.command}\nprinted ${out}`);
      assert.equal(out, pin, `${r.where}: ${r.command}`);
    }
  }
});
