import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { certPin, isPin, parseCert } from "../../agent/pki/x509.js";
import { makeCa } from "../helpers/pki.js";

test("the SPKI pin equals kubeadm's openssl one-liner", async () => {
  const dir = mkdtempSync(join(tmpdir(), "nj-pin-"));
  for (const [i, args] of [
    ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    ["rsa", "-pkeyopt", "rsa_keygen_bits:2048"],
  ].entries()) {
    const key = join(dir, `k${i}.pem`);
    const crt = join(dir, `c${i}.pem`);
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        args[0]!,
        ...args.slice(1),
        "-nodes",
        "-keyout",
        key,
        "-out",
        crt,
        "-subj",
        "/CN=kubernetes",
        "-days",
        "1",
      ],
      { stdio: "ignore" },
    );
    const shell = execFileSync("sh", [
      "-c",
      `openssl x509 -in ${crt} -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex`,
    ])
      .toString()
      .trim()
      .split(/\s+/)
      .pop();
    const pin = certPin(parseCert(execFileSync("cat", [crt]).toString()));
    assert.equal(pin, `sha256:${shell}`);
    assert.ok(isPin(pin));
  }
});

test("pins of different CAs differ and the format check rejects near misses", async () => {
  const a = await makeCa("a");
  const b = await makeCa("b");
  assert.notEqual(certPin(parseCert(a.pem)), certPin(parseCert(b.pem)));
  assert.equal(isPin("sha256:" + "A".repeat(64)), false);
  assert.equal(isPin("sha256:" + "a".repeat(63)), false);
  assert.equal(isPin("sha1:" + "a".repeat(64)), false);
});

test("parseCert: a text parsed once per process, another text parsed anew (packaging/README.md section 9)", async () => {
  const a = await makeCa("a");
  const b = await makeCa("b");
  const first = parseCert(a.pem);
  assert.equal(parseCert(a.pem), first, "the same text: the same reading");
  assert.equal(parseCert(b.pem).commonName, "b");
  assert.notEqual(parseCert(b.pem), first);
  assert.equal(first.commonName, "a");
  // An invalid text is never remembered: it fails every time.
  const broken = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  assert.throws(() => parseCert(broken));
  assert.throws(() => parseCert(broken));
});
