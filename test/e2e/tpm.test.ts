// agent/tpm against a real software TPM (swtpm): keys made in one TPM sign and MAC as node:crypto
// verifies, a key wrapped by one TPM does not load in another, and each way of not reaching a TPM
// is its own one-line error.
import assert from "node:assert/strict";
import { createHmac, randomBytes, verify } from "node:crypto";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { ExitCode, UsageError } from "../../agent/common/errors.js";
import { encodeBlob, parseBlob } from "../../agent/tpm/blob.js";
import { TpmError, TpmForeignKeyError } from "../../agent/tpm/tools.js";
import { createTpm } from "../../agent/tpm/tpm.js";
import { freePort } from "../helpers/listening.js";
import { useSwtpm } from "../helpers/swtpm.js";

const first = useSwtpm();
const second = useSwtpm();

describe("TPM module against swtpm", () => {
  it("an ECC P-256 key made in the TPM signs what node:crypto verifies (DER and JOSE r||s)", async () => {
    const tpm = createTpm({ tcti: first.tcti });
    const blob = await tpm.createSigningKey();
    const pub = await tpm.publicKey(blob);
    assert.equal(pub.asymmetricKeyDetails?.namedCurve, "prime256v1");
    const data = Buffer.from("header.payload");
    const der = await tpm.sign(blob, data, "der");
    assert.ok(verify("sha256", data, pub, der));
    const jose = await tpm.sign(blob, data, "jose");
    assert.equal(jose.length, 64);
    assert.ok(verify("sha256", data, { key: pub, dsaEncoding: "ieee-p1363" }, jose));
    assert.ok(
      !verify("sha256", Buffer.from("other"), { key: pub, dsaEncoding: "ieee-p1363" }, jose),
    );
    // The blob round-trips through its file format.
    const again = parseBlob(encodeBlob(blob, tpm.tcti), "key.json", "ecc-p256");
    assert.ok(verify("sha256", data, pub, await tpm.sign(again, data, "der")));
  });

  it("an imported HMAC key gives node:crypto's HMAC-SHA256, for inputs beyond 1 KiB too", async () => {
    const tpm = createTpm({ tcti: first.tcti });
    const key = randomBytes(16);
    const blob = await tpm.importHmacKey(key);
    assert.ok(!blob.private.includes(key), "the wrapped blob does not hold the key in clear");
    for (const size of [0, 100, 1024, 5000]) {
      const data = randomBytes(size);
      const want = createHmac("sha256", key).update(data).digest();
      assert.deepEqual(await tpm.hmacSha256(blob, data), want, `${size} bytes`);
    }
  });

  it("many operations in a row do not exhaust a TPM without a resource manager", async () => {
    const tpm = createTpm({ tcti: first.tcti });
    const blob = await tpm.importHmacKey(randomBytes(32));
    for (let i = 0; i < 8; i++) await tpm.hmacSha256(blob, Buffer.from(`n${i}`));
  });

  it("a key wrapped by one TPM does not load in another: an error naming the TPM", async () => {
    const signing = await createTpm({ tcti: first.tcti }).createSigningKey();
    const hmac = await createTpm({ tcti: first.tcti }).importHmacKey(randomBytes(16));
    const other = createTpm({ tcti: second.tcti });
    for (const attempt of [
      () => other.sign(signing, Buffer.from("x"), "jose"),
      () => other.hmacSha256(hmac, Buffer.from("x")),
    ]) {
      await assert.rejects(attempt, (e: unknown) => {
        assert.ok(e instanceof TpmForeignKeyError, String(e));
        assert.equal(e.exitCode, ExitCode.localIo);
        assert.match(
          e.message,
          new RegExp(
            `^TPM ${second.tcti} cannot load the node's key: it was wrapped by another TPM`,
          ),
        );
        assert.doesNotMatch(e.message, /\n/);
        return true;
      });
    }
  });

  it("the host's TPM2TOOLS_* and TSS2_* variables do not steer the tools", async () => {
    const saved = { ...process.env };
    process.env.TPM2TOOLS_TCTI = "bogus:nothing";
    process.env.TSS2_TCTI = "bogus:nothing";
    process.env.TPM2TOOLS_ENABLE_ERRATA = "1";
    try {
      const tpm = createTpm({ tcti: first.tcti });
      await tpm.hmacSha256(await tpm.importHmacKey(randomBytes(16)), Buffer.from("x"));
    } finally {
      for (const k of ["TPM2TOOLS_TCTI", "TSS2_TCTI", "TPM2TOOLS_ENABLE_ERRATA"])
        if (saved[k] === undefined) delete process.env[k];
    }
  });
});

describe("TPM module: one-line errors with the fix", () => {
  const oneLine = (re: RegExp, type: new (...a: never[]) => Error) => (e: unknown) => {
    assert.ok(e instanceof type, `${String(e)} is not a ${type.name}`);
    assert.match(e.message, re);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  };

  it("tpm2-tools missing", async () => {
    const tpm = createTpm({ tcti: first.tcti, toolsDir: "/nonexistent/bin" });
    await assert.rejects(
      tpm.createSigningKey(),
      oneLine(
        /tpm2-tools is not installed \(no \/nonexistent\/bin\/tpm2_createprimary\): apt-get install tpm2-tools/,
        TpmError,
      ),
    );
  });

  it("no TPM device", async () => {
    const tpm = createTpm({ tcti: "device:/nonexistent/tpmrm0" });
    await assert.rejects(
      tpm.createSigningKey(),
      oneLine(
        /^TPM device:\/nonexistent\/tpmrm0: no TPM at \/nonexistent\/tpmrm0: the host has no TPM 2\.0/,
        TpmError,
      ),
    );
  });

  it("nothing listening at the TCTI's address", async () => {
    const port = await freePort();
    const tpm = createTpm({ tcti: `swtpm:host=127.0.0.1,port=${port}` });
    await assert.rejects(
      tpm.createSigningKey(),
      oneLine(/nothing answers at this TCTI \(connection refused\)/, TpmError),
    );
  });

  it("a TCTI tpm2-tools cannot load is the setting's fault (exit 2)", async () => {
    const tpm = createTpm({ tcti: "tbs:whatever" });
    await assert.rejects(tpm.createSigningKey(), (e: unknown) => {
      oneLine(
        /^tpm\.tcti \(--tpm-tcti\) "tbs:whatever": tpm2-tools cannot load this TCTI/,
        UsageError,
      )(e);
      assert.equal((e as UsageError).exitCode, ExitCode.usage);
      return true;
    });
  });

  it("a TPM held by another client: busy, after the timeout", async () => {
    // swtpm serves one connection at a time: while this one is open, the tools wait.
    const hold = connect({ host: "127.0.0.1", port: first.port });
    await new Promise((r) => hold.once("connect", r));
    try {
      const tpm = createTpm({ tcti: first.tcti, timeoutMs: 1500 });
      await assert.rejects(
        tpm.createSigningKey(),
        oneLine(
          /no answer within 2s \(tpm2_createprimary\): another program holds the TPM/,
          TpmError,
        ),
      );
    } finally {
      hold.destroy();
    }
  });

  it("a blob file that is not one is refused naming the file", () => {
    const good = {
      kind: "hmac-sha256" as const,
      public: Buffer.from([0, 2, 1, 2]),
      private: Buffer.from([0, 2, 3, 4]),
    };
    const text = encodeBlob(good, "x");
    assert.deepEqual(parseBlob(text, "f", "hmac-sha256"), good);
    for (const [bad, why] of [
      ["nope", /not JSON/],
      [text.replace("node-join-tpm-key/1", "x"), /format/],
      [text, /a hmac-sha256 key where a ecc-p256 key belongs/],
      [text.replace('"AAIBAg=="', '"AAkBAg=="'), /public is not a TPM2B/],
    ] as const) {
      assert.throws(
        () =>
          parseBlob(
            bad,
            "/var/lib/node-join/tpm/k.json",
            bad === text ? "ecc-p256" : "hmac-sha256",
          ),
        (e: unknown) =>
          e instanceof Error &&
          why.test(e.message) &&
          e.message.startsWith("/var/lib/node-join/tpm/k.json: not a TPM key"),
      );
    }
  });
});
