// A root joined the way a user joins one, `node-join join` through main() in process, against fake
// CAs (fake-ca.ts) on a fake clock: for the fast tier's tests of what the commands print and exit
// with, without root, network or a real CA.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RuntimeSeams } from "../../agent/cli/context.js";
import { main } from "../../agent/cli/main.js";
import type { CaName } from "../../agent/pki/cas.js";
import { certPin, parseCert, splitPemCertificates, type CertInfo } from "../../agent/pki/x509.js";
import { FakeCa, fakeClock } from "./fake-ca.js";
import { tempRoot } from "./fs.js";
import { writeSaKeys } from "./sa-keys.js";

export const DAY = 86400_000;

export interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** The documented date form, written out independently of the code under test. */
export const iso = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, "Z");

/** The installed kubelet certificate of `prefix` (kubelet-client, kubelet-server). */
export function kubeletLeaf(root: string, prefix: string): CertInfo {
  const file = join(root, "var/lib/kubelet/pki", `${prefix}-current.pem`);
  return parseCert(splitPemCertificates(readFileSync(file, "utf8"))[0]!);
}

/** Runs the CLI in process, collecting what it prints. */
export async function cli(argv: string[], seams: RuntimeSeams = {}): Promise<Out> {
  let stdout = "";
  let stderr = "";
  const io = {
    stdout: (t: string) => void (stdout += t),
    stderr: (t: string) => void (stderr += t),
    env: {},
  };
  const code = await main(argv, io, seams);
  return { code, stdout, stderr };
}

export interface Joined {
  root: string;
  clock: ReturnType<typeof fakeClock>;
  cas: Record<CaName, FakeCa>;
  /** `node-join <command> --root <root> ...args` on the same CAs and clock. */
  run(command: string, ...args: string[]): Promise<Out>;
}

/** A fresh root, a fake clock and a fake CA for every CA, issuing for `lifetimeMs`. */
export async function fakeCaRoot(prefix: string, lifetimeMs: number) {
  const root = tempRoot(prefix);
  const clock = fakeClock();
  return { root, clock, cas: await FakeCa.forEveryCa(clock, lifetimeMs) };
}

/** A root joined by `node-join join` (fake CAs issuing for `lifetimeMs`). */
export async function joined(
  role: "worker" | "control-plane" = "worker",
  lifetimeMs = 365 * DAY,
): Promise<Joined> {
  const { root, clock, cas } = await fakeCaRoot("nj-joined-", lifetimeMs);
  const seams: RuntimeSeams = { clock, backend: (ctx) => cas[ctx.ca.name] };
  // Each CA pinned to its own key, as an operator pins it: status checks the CA files against it.
  const pin = (ca: CaName) => certPin(cas[ca].anchor);
  const args = [
    ...["join", "--root", root, "--role", role, "--api-server", "https://10.0.0.1:6443"],
    ...["--ca-url", "http://ca.invalid:8888", "--ca-cert-hash", pin("kubernetes")],
    ...["--node-name", role === "worker" ? "w1" : "cp1", "--ip", "10.0.0.21", "--no-timer"],
  ];
  if (role === "control-plane") {
    const { key, pub } = writeSaKeys(join(root, "etc/node-join"));
    args.push(
      ...["--etcd-ca-cert-hash", pin("etcd"), "--front-proxy-ca-cert-hash", pin("frontProxy")],
      ...["--sa-key-file", key, "--sa-pub-file", pub],
    );
  }
  const r = await cli(args, seams);
  assert.equal(r.code, 0, r.stderr);
  return {
    root,
    clock,
    cas,
    run: (command, ...a) => cli([command, "--root", root, ...a], seams),
  };
}

/** The CFSSL auth key cfsslKeyNode writes (hex, as CFSSL's config holds it). */
export const KEY_HEX = "00112233445566778899aabbccddeeff";

/**
 * A worker root whose kubernetes CA (a fake) wants an auth key, in a 0600 file of the root: `join`
 * runs node-join join with `extra`, `run` any command under the root, `putBack` rewrites the key.
 */
export async function cfsslKeyNode(...extra: string[]) {
  const { root, clock, cas } = await fakeCaRoot("nj-authkey-", 365 * DAY);
  const seams: RuntimeSeams = { clock, backend: (ctx) => cas[ctx.ca.name] };
  mkdirSync(join(root, "etc/node-join"), { recursive: true });
  const keyFile = join(root, "etc/node-join/ca-auth.key");
  const putBack = () => writeFileSync(keyFile, `${KEY_HEX}\n`, { mode: 0o600 });
  putBack();
  const args = [
    ...["join", "--root", root, "--api-server", "https://10.0.0.1:6443"],
    ...["--ca-url", "http://ca.invalid:8888", "--ca-cert-hash", certPin(cas.kubernetes.anchor)],
    ...["--ca-auth-key-file", keyFile, "--node-name", "w1", "--ip", "10.0.0.21", "--no-timer"],
    ...extra,
  ];
  return {
    root,
    keyFile,
    cas,
    putBack,
    join: (...more: string[]) => cli([...args, ...more], seams),
    run: (command: string, ...a: string[]) => cli([command, "--root", root, ...a], seams),
  };
}
