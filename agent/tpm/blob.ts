// A TPM-wrapped key as one file under the node's state directory: what kind of key, and the two
// structures tpm2_load takes back. Not a secret without the TPM that wrapped it, kept 0600 all the
// same; read as untrusted input (a file under the root may have been edited).
import { LocalIoError } from "../common/errors.js";
import type { TpmKeyBlob, TpmKeyKind } from "./tpm.js";

const FORMAT = "node-join-tpm-key/1";
const KINDS: readonly TpmKeyKind[] = ["ecc-p256", "hmac-sha256"];
/** TPM2B_PUBLIC and TPM2B_PRIVATE are a few hundred bytes; anything much larger is not one. */
const MAX_PART = 4096;

export function encodeBlob(blob: TpmKeyBlob, tcti: string): string {
  return `${JSON.stringify(
    {
      format: FORMAT,
      kind: blob.kind,
      // Where it was made, for messages only: the TPM that loads it is the one tpm.tcti names.
      tcti,
      public: blob.public.toString("base64"),
      private: blob.private.toString("base64"),
    },
    null,
    2,
  )}\n`;
}

/** The blob a file holds, or an error naming the file and what is wrong with it. */
export function parseBlob(text: string, file: string, kind: TpmKeyKind): TpmKeyBlob {
  const bad = (why: string) =>
    new LocalIoError(`${file}: not a TPM key of node-join (${why}): join again to make it anew`);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw bad("not JSON");
  }
  if (typeof v !== "object" || v === null) throw bad("not an object");
  const o = v as Record<string, unknown>;
  if (o.format !== FORMAT) throw bad(`format is not ${FORMAT}`);
  if (typeof o.kind !== "string" || !KINDS.includes(o.kind as TpmKeyKind))
    throw bad("unknown kind");
  if (o.kind !== kind) throw bad(`a ${o.kind} key where a ${kind} key belongs`);
  const part = (name: "public" | "private"): Buffer => {
    const b64 = o[name];
    if (typeof b64 !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64))
      throw bad(`${name} is not base64`);
    const b = Buffer.from(b64, "base64");
    if (b.length < 4 || b.length > MAX_PART) throw bad(`${name} has ${b.length} bytes`);
    // A TPM2B: a big-endian 16-bit size, then that many bytes (TPM 2.0 Part 2 §10.4).
    if (b.readUInt16BE(0) !== b.length - 2) throw bad(`${name} is not a TPM2B structure`);
    return b;
  };
  return { kind, public: part("public"), private: part("private") };
}
