// The node's TPM 2.0, through tpm2-tools (tools.ts): keys that never leave it, created under the
// storage (owner) hierarchy, of which only the TPM-wrapped blob (TPM2B_PUBLIC and TPM2B_PRIVATE,
// the private part encrypted under the TPM's storage primary key) is kept on disk.
//
// The storage primary key is not persisted: it is created again on every use from a fixed
// template (the TCG's ECC P-256 storage root key template: TCG "TPM v2.0 Provisioning Guidance"
// §7.5.1, restricted decrypt, AES-128-CFB, noDA), which gives the same key from the same TPM
// every time (TPM 2.0 Part 1 §27.3, primary keys derive from the hierarchy's seed). A blob is
// loadable only under it: a blob copied to another machine meets another seed, and tpm2_load
// fails with TPM_RC_INTEGRITY (tools.ts TpmForeignKeyError).
//
// Each command is a new TPM connection. A TPM behind the kernel's resource manager (/dev/tpmrm0)
// flushes what a connection loaded when it closes; /dev/tpm0 and a swtpm socket do not, so every
// step ends with tpm2_flushcontext -t (transient objects), or the TPM soon answers 0x902.
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runTool, TpmError, type TpmToolsOptions } from "./tools.js";

/** What a wrapped key is for: an ECDSA P-256 signing key, or an HMAC-SHA256 key. */
export type TpmKeyKind = "ecc-p256" | "hmac-sha256";

/** A key wrapped by the TPM: useless without the TPM that made (or imported) it. */
export interface TpmKeyBlob {
  kind: TpmKeyKind;
  /** TPM2B_PUBLIC, as tpm2_create -u writes it. */
  public: Buffer;
  /** TPM2B_PRIVATE, encrypted under the storage primary key, as tpm2_create -r writes it. */
  private: Buffer;
}

export interface Tpm {
  /** The TCTI it is reached at, as messages name it. */
  readonly tcti: string;
  /**
   * A new ECDSA P-256 signing key inside the TPM: fixedTPM and fixedParent (never duplicated out
   * of it), sensitiveDataOrigin (the TPM made the private part), unrestricted (it signs digests it
   * did not hash itself: JOSE and X.509 signing inputs).
   */
  createSigningKey(): Promise<TpmKeyBlob>;
  /** The public key of a signing key (from its TPM2B_PUBLIC; the TPM is not asked). */
  publicKey(blob: TpmKeyBlob): Promise<KeyObject>;
  /**
   * An ECDSA signature over SHA-256(data) by the key: "der" (ECDSA-Sig-Value, RFC 3279 §2.2.3, as
   * X.509 and CSRs carry it) or "jose" (r‖s, 64 bytes: RFC 7518 §3.4 ES256).
   */
  sign(blob: TpmKeyBlob, data: Uint8Array, format: "der" | "jose"): Promise<Buffer>;
  /** Imports an HMAC key into the TPM as a keyed-hash object (tpm2_import -G hmac). */
  importHmacKey(key: Uint8Array): Promise<TpmKeyBlob>;
  /** HMAC-SHA256(key, data) computed in the TPM (tpm2_hmac, a sequence beyond 1 KiB). */
  hmacSha256(blob: TpmKeyBlob, data: Uint8Array): Promise<Buffer>;
}

/** The storage primary key's template (see the top): the same key from the same TPM each time. */
const PRIMARY = [
  ["-C", "o"],
  ["-g", "sha256"],
  ["-G", "ecc256:aes128cfb"],
  ["-a", "restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda"],
].flat();

const SIGNING_KEY = [
  ["-G", "ecc256:ecdsa-sha256"],
  ["-a", "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign"],
].flat();

/** Keyed-hash keys larger than this do not fit a TPM2B_SENSITIVE_DATA (MAX_SYM_DATA, 128 bytes). */
export const MAX_HMAC_KEY_BYTES = 128;

/** The private temporary directory of one operation (0700, mkdtemp), removed after. */
async function inTempDir<T>(f: (dir: string) => Promise<T>): Promise<T> {
  // /tmp, not $TMPDIR: the environment is not trusted to choose where key material goes; mkdtemp
  // makes an unguessable 0700 directory there.
  const dir = mkdtempSync("/tmp/node-join-tpm-");
  try {
    return await f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads a DER length at `at`: [length, offset of the content]. */
function derLength(der: Uint8Array, at: number): [number, number] {
  const first = der[at]!;
  if (first < 0x80) return [first, at + 1];
  const n = first & 0x7f;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + der[at + 1 + i]!;
  return [len, at + 1 + n];
}

/**
 * ECDSA-Sig-Value (SEQUENCE { r INTEGER, s INTEGER }, RFC 3279 §2.2.3) as r‖s, each left-padded
 * to `size` bytes (RFC 7518 §3.4).
 */
export function derToJose(der: Uint8Array, size = 32): Buffer {
  if (der[0] !== 0x30) throw new Error("ECDSA signature: not a DER SEQUENCE");
  let [, at] = derLength(der, 1);
  const out: Buffer[] = [];
  for (let i = 0; i < 2; i++) {
    if (der[at] !== 0x02) throw new Error("ECDSA signature: not a DER INTEGER");
    const [len, start] = derLength(der, at + 1);
    let v = Buffer.from(der.subarray(start, start + len));
    while (v.length > size && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new Error("ECDSA signature: integer longer than the curve");
    out.push(Buffer.concat([Buffer.alloc(size - v.length), v]));
    at = start + len;
  }
  return Buffer.concat(out);
}

// One operation at a time in this process, whatever the Tpm: two interleaved would flush each
// other's objects (a TPM without a resource manager has one context for all its clients), and a
// TPM holds only a few objects at once.
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(f: () => Promise<T>): Promise<T> {
  const next = queue.then(f, f);
  queue = next.catch(() => undefined);
  return next;
}

export function createTpm(o: TpmToolsOptions): Tpm {
  const run = (tool: string, args: string[], input?: Buffer, local?: boolean) =>
    runTool(tool, args, o, input, local);
  const flush = () => run("tpm2_flushcontext", ["-t"]);
  /**
   * Runs one step, then flushes what it left loaded, even when it failed; not after a TPM that did
   * not answer (the flush would wait as long again).
   */
  const step = async (tool: string, args: string[], input?: Buffer) => {
    let busy = false;
    try {
      return await run(tool, args, input);
    } catch (err) {
      busy = err instanceof TpmError && err.errno === "EBUSY";
      throw err;
    } finally {
      if (!busy) await flush().catch(() => undefined);
    }
  };

  const primary = async (dir: string): Promise<string> => {
    const ctx = join(dir, "primary.ctx");
    await step("tpm2_createprimary", ["-Q", ...PRIMARY, "-c", ctx]);
    return ctx;
  };
  /** The blob loaded under the primary key, as a context file. */
  const load = async (dir: string, blob: TpmKeyBlob): Promise<string> => {
    const parent = await primary(dir);
    const [pub, priv, ctx] = ["key.pub", "key.priv", "key.ctx"].map((f) => join(dir, f));
    writeFileSync(pub!, blob.public, { mode: 0o600 });
    writeFileSync(priv!, blob.private, { mode: 0o600 });
    await step("tpm2_load", ["-Q", "-C", parent, "-u", pub!, "-r", priv!, "-c", ctx!]);
    return ctx!;
  };
  const readBlob = (dir: string, kind: TpmKeyKind): TpmKeyBlob => ({
    kind,
    public: readFileSync(join(dir, "new.pub")),
    private: readFileSync(join(dir, "new.priv")),
  });
  const expect = (blob: TpmKeyBlob, kind: TpmKeyKind) => {
    if (blob.kind !== kind) throw new Error(`TPM key: a ${blob.kind} key, not ${kind}`);
  };

  return {
    tcti: o.tcti,
    createSigningKey: () =>
      serial(() =>
        inTempDir(async (dir) => {
          const parent = await primary(dir);
          const out = ["-u", join(dir, "new.pub"), "-r", join(dir, "new.priv")];
          await step("tpm2_create", ["-Q", "-C", parent, ...SIGNING_KEY, ...out]);
          return readBlob(dir, "ecc-p256");
        }),
      ),
    publicKey: (blob) =>
      serial(() =>
        inTempDir(async (dir) => {
          expect(blob, "ecc-p256");
          const pub = join(dir, "key.pub");
          writeFileSync(pub, blob.public, { mode: 0o600 });
          // tpm2_print decodes the structure locally (tpm2_print(1)); no TCTI is opened.
          const { stdout } = await run(
            "tpm2_print",
            ["-t", "TPM2B_PUBLIC", "-f", "pem", pub],
            undefined,
            true,
          );
          return createPublicKey(stdout.toString("utf8"));
        }),
      ),
    sign: (blob, data, format) =>
      serial(() =>
        inTempDir(async (dir) => {
          expect(blob, "ecc-p256");
          const ctx = await load(dir, blob);
          const digest = join(dir, "digest");
          writeFileSync(digest, createHash("sha256").update(data).digest(), { mode: 0o600 });
          const sig = join(dir, "sig");
          // -d: the input is the digest; -f plain: the DER ECDSA-Sig-Value (tpm2_sign(1)).
          const args = ["-Q", "-c", ctx, "-g", "sha256", "-s", "ecdsa", "-d", "-f", "plain"];
          await step("tpm2_sign", [...args, "-o", sig, digest]);
          const der = readFileSync(sig);
          return format === "der" ? der : derToJose(der);
        }),
      ),
    importHmacKey: (key) =>
      serial(() =>
        inTempDir(async (dir) => {
          if (key.length === 0 || key.length > MAX_HMAC_KEY_BYTES)
            throw new Error(`HMAC key of ${key.length} bytes: the TPM takes 1 to 128`);
          const parent = await primary(dir);
          const raw = join(dir, "key.bin");
          writeFileSync(raw, key, { mode: 0o600 });
          const out = ["-u", join(dir, "new.pub"), "-r", join(dir, "new.priv")];
          try {
            await step("tpm2_import", [
              "-Q",
              "-C",
              parent,
              "-G",
              "hmac",
              "-g",
              "sha256",
              "-i",
              raw,
              ...out,
            ]);
          } finally {
            rmSync(raw, { force: true });
          }
          return readBlob(dir, "hmac-sha256");
        }),
      ),
    hmacSha256: (blob, data) =>
      serial(() =>
        inTempDir(async (dir) => {
          expect(blob, "hmac-sha256");
          const ctx = await load(dir, blob);
          // The data on standard input: tpm2_hmac switches to an HMAC sequence beyond what one
          // TPM2_HMAC takes (MAX_DIGEST_BUFFER, 1 KiB), so a CFSSL request of any size is one MAC.
          const { stdout } = await step(
            "tpm2_hmac",
            ["-c", ctx, "-g", "sha256", "--hex"],
            Buffer.from(data),
          );
          const hex = stdout.toString("utf8").trim();
          if (!/^[0-9a-f]{64}$/.test(hex))
            throw new Error(`tpm2_hmac: unexpected output "${hex.slice(0, 80)}"`);
          return Buffer.from(hex, "hex");
        }),
      ),
  };
}
