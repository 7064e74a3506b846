// A throwaway CFSSL CA on loopback: a real `cfssl serve` (Debian golang-cfssl) with a fresh CA and
// auth key in a temporary directory, made and served from the CA operator's files of
// docs/ca-cfssl.md (docs/ca/cfssl/: CSR, config, the unit's command line). A developer tool: the
// end-to-end tests (through test/helpers/cfssl.ts), `npm run demo`, `npm run bench` and the
// packaging training run (packaging/sea-train-ca.ts) start one each. Only node: built-ins and the
// cfssl, cfssljson, openssl and curl commands (and sqlite3 for a CA with a certificate database).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CONTROL_PLANE_AUTH_KEYS, type ClusterCas } from "./args.js";

export interface Profile {
  expiry?: string;
  usages?: string[];
  /** Requires the auth key (default true). */
  auth?: boolean;
  /** CFSSL's name_whitelist: a regular expression every CN and SAN must match. */
  nameWhitelist?: string;
}

export interface CfsslOptions {
  /** CA common name (default "kubernetes"). */
  cn?: string;
  /** Signing profiles; "default" is the profile used when a request names none. */
  profiles?: Record<string, Profile>;
  /** Serve over TLS with a server certificate issued by the CA itself. */
  tls?: boolean;
  /** Reuse an existing CA (cert and key files) instead of making one. */
  ca?: { cert: string; key: string };
  /** The auth key of the profiles, hex (default: a random one); servers of one CA share theirs. */
  authKeyHex?: string;
  /**
   * Keep a certificate database (`cfssl serve -db-config`, sqlite): every signed certificate is
   * recorded, and /api/v1/cfssl/revoke is set up (without one, it answers 404).
   */
  db?: boolean;
}

/** A row of the CA's `certificates` table (cloudflare/cfssl certdb). */
export interface CertificateRow {
  /** Decimal. */
  serial_number: string;
  authority_key_identifier: string;
  ca_label: string | null;
  /** "good" or "revoked". */
  status: string;
  /** RFC 5280 CRLReason code (5: cessationOfOperation). */
  reason: number;
  revoked_at: string;
}

export interface CfsslCa {
  url: string;
  port: number;
  dir: string;
  caCertFile: string;
  caKeyFile: string;
  caPem: string;
  /** kubeadm-style pin of the CA certificate, computed with openssl. */
  pin: string;
  authKeyHex: string;
  logFile: string;
  /** Writes the auth key to a 0600 file and returns its path. */
  writeAuthKey(path: string, mode?: number): string;
  /**
   * Writes the auth key where a node keeps it, <root>/etc/node-join/<name> (default ca-auth.key),
   * making the directory, and returns its path.
   */
  installAuthKey(root: string, name?: string): string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Count of sign requests the CA logged. */
  signRequests(): number;
  /** The certificate database (opts.db), else undefined. */
  dbFile?: string;
  /** The rows of the certificate database (opts.db), read with the sqlite3 command. */
  certificates(): CertificateRow[];
  /** Runs SQL against the certificate database (opts.db): stores what another version would. */
  sql(statement: string): void;
}

const BOTH_USAGES = ["signing", "key encipherment", "server auth", "client auth"];

/**
 * The CA operator's files (docs/ca-cfssl.md, docs/ca/cfssl/): every throwaway CA is made and
 * served from these very files, so the guide cannot drift from what the tests run.
 */
export const CFSSL_GUIDE_DIR = fileURLToPath(new URL("../../docs/ca/cfssl/", import.meta.url));

interface Policy {
  expiry: string;
  usages: string[];
  auth_key?: string;
  name_whitelist?: string;
}

interface CaConfig {
  signing: { default: Policy; profiles: Record<string, Policy> };
  auth_keys: Record<string, { type: string; key: string }>;
}

/**
 * A guide file with its placeholders replaced: the one place where a test CA differs from the
 * guide's. Each placeholder must occur, so a renamed one in the guide fails loudly.
 */
export function guideFile(name: string, values: Record<string, string> = {}): string {
  let text = readFileSync(join(CFSSL_GUIDE_DIR, name), "utf8");
  for (const [placeholder, value] of Object.entries(values)) {
    if (!text.includes(placeholder))
      throw new Error(`docs/ca/cfssl/${name} no longer holds the placeholder ${placeholder}`);
    text = text.split(placeholder).join(value);
  }
  return text;
}

/** The guide's ca-config.json, the auth key placeholder filled in. */
function guideConfig(authKeyHex: string): CaConfig {
  return JSON.parse(guideFile("ca-config.json", { AUTH_KEY_HEX: authKeyHex })) as CaConfig;
}

const toProfile = (p: Policy): Profile => ({
  expiry: p.expiry,
  usages: p.usages,
  auth: p.auth_key !== undefined,
  ...(p.name_whitelist !== undefined ? { nameWhitelist: p.name_whitelist } : {}),
});

const GUIDE_SIGNING = guideConfig("00").signing;

/**
 * The guide's profiles (kubelet-client, kubelet-serving, client, serving, peer and its default,
 * which signs no name and no TLS usage), and "short", a test profile for renewals.
 */
export const DEFAULT_PROFILES: Record<string, Profile> = {
  default: toProfile(GUIDE_SIGNING.default),
  ...Object.fromEntries(Object.entries(GUIDE_SIGNING.profiles).map(([k, v]) => [k, toProfile(v)])),
  short: { usages: BOTH_USAGES, expiry: "1h" },
};

/**
 * A control-plane root's etc/node-join as cloud-init leaves it: the auth key of each of its three
 * CAs (CONTROL_PLANE_AUTH_KEYS) and the cluster's shared service-account pair (sa.key, sa.pub in
 * saDir).
 */
export function installControlPlaneSecrets(
  root: string,
  cas: ClusterCas<CfsslCa>,
  saDir: string,
): void {
  for (const which of ["kubernetes", "frontProxy", "etcd"] as const)
    cas[which].installAuthKey(root, CONTROL_PLANE_AUTH_KEYS[which]);
  for (const f of ["sa.key", "sa.pub"])
    copyFileSync(join(saDir, f), join(root, "etc/node-join", f));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port")),
      );
    });
  });
}

export function requireCommand(cmd: string, pkg: string): void {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
  } catch {
    throw new Error(
      `${cmd} not found: scripts/deps.sh (run by npm test and npm run demo) installs Debian package ${pkg}; run it first`,
    );
  }
}

export function opensslPin(certFile: string): string {
  const hex = execFileSync("sh", [
    "-c",
    `openssl x509 -in '${certFile}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex`,
  ])
    .toString()
    .trim()
    .split(/\s+/)
    .pop()!;
  return `sha256:${hex}`;
}

/** The guide's CA: `cfssl gencert -initca ca-csr.json | cfssljson -bare ca`, CN `cn`. */
function makeCa(dir: string, cn: string): { cert: string; key: string } {
  writeFileSync(
    join(dir, "ca-csr.json"),
    guideFile("ca-csr.json", { '"CN": "kubernetes"': `"CN": ${JSON.stringify(cn)}` }),
  );
  execFileSync("sh", [
    "-c",
    `cd '${dir}' && cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca`,
  ]);
  return { cert: join(dir, "ca.pem"), key: join(dir, "ca-key.pem") };
}

/** The guide's ca-config.json; `profiles` (a test's own) replace its signing profiles. */
function caConfig(authKeyHex: string, profiles: Record<string, Profile> | undefined): CaConfig {
  const config = guideConfig(authKeyHex);
  if (!profiles) {
    config.signing.profiles["short"] = toPolicy(DEFAULT_PROFILES["short"]!, config);
    return config;
  }
  const { default: def, ...rest } = profiles;
  config.signing = {
    default: toPolicy(def ?? { usages: BOTH_USAGES }, config),
    profiles: Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, toPolicy(v, config)])),
  };
  return config;
}

function toPolicy(p: Profile, config: CaConfig): Policy {
  return {
    expiry: p.expiry ?? "8760h",
    usages: p.usages ?? BOTH_USAGES,
    ...(p.auth === false ? {} : { auth_key: Object.keys(config.auth_keys)[0]! }),
    ...(p.nameWhitelist !== undefined ? { name_whitelist: p.nameWhitelist } : {}),
  };
}

/**
 * The arguments of the guide's systemd unit's `cfssl serve` (cfssl-serve.service ExecStart), each
 * flag's value replaced by `values` (a flag it maps to undefined is left out). A flag the unit
 * gains that this does not know fails loudly.
 */
export function guideServeArgs(values: Record<string, string | undefined>): string[] {
  const line = guideFile("cfssl-serve.service")
    .split("\n")
    .find((l) => l.startsWith("ExecStart="));
  const [cmd, serve, ...rest] = (line ?? "").slice("ExecStart=".length).split(/\s+/);
  if (cmd !== "/usr/bin/cfssl" || serve !== "serve" || rest.length % 2 !== 0)
    throw new Error(`docs/ca/cfssl/cfssl-serve.service: unexpected ExecStart ${line}`);
  const args: string[] = ["serve"];
  for (let i = 0; i < rest.length; i += 2) {
    const flag = rest[i]!;
    if (!(flag in values))
      throw new Error(`docs/ca/cfssl/cfssl-serve.service: ${flag} is not substituted`);
    const value = values[flag];
    if (value !== undefined) args.push(`${flag}=${value}`);
  }
  return args;
}

/**
 * The server's TLS certificate, from the guide's tls-server-csr.json and tls-config.json, for
 * localhost and 127.0.0.1. The guide gives `cfssl serve` a TLS CA of its own
 * (tls-ca-csr.json); the tests issue it from the CA itself, which the pin then anchors.
 */
function makeTlsCert(dir: string, ca: { cert: string; key: string }): string[] {
  writeFileSync(
    join(dir, "server-csr.json"),
    guideFile("tls-server-csr.json", {
      '"CN": "ca.lab"': '"CN": "localhost"',
      '["ca.lab", "10.0.0.5"]': '["localhost", "127.0.0.1"]',
    }),
  );
  writeFileSync(join(dir, "tls-config.json"), guideFile("tls-config.json"));
  execFileSync("sh", [
    "-c",
    `cd '${dir}' && cfssl gencert -ca '${ca.cert}' -ca-key '${ca.key}' -config tls-config.json server-csr.json 2>/dev/null | cfssljson -bare server`,
  ]);
  return [`-tls-cert=${join(dir, "server.pem")}`, `-tls-key=${join(dir, "server-key.pem")}`];
}

export async function startCfssl(opts: CfsslOptions = {}): Promise<CfsslCa> {
  requireCommand("cfssl", "golang-cfssl");
  requireCommand("cfssljson", "golang-cfssl");
  if (opts.db) requireCommand("sqlite3", "sqlite3");
  const dir = mkdtempSync(join(tmpdir(), "nj-cfssl-"));
  const dbFile = opts.db ? join(dir, "certs.db") : undefined;
  const sql = (statement: string, json = false): string => {
    if (!dbFile) throw new Error("this CFSSL CA has no certificate database (startCfssl db: true)");
    return execFileSync("sqlite3", [...(json ? ["-json"] : []), dbFile, statement], {
      encoding: "utf8",
    });
  };
  if (dbFile) {
    // As the guide does, `sqlite3 certs.db < certdb.sql` (its leading comment is no argument).
    execFileSync("sqlite3", [dbFile], { input: guideFile("certdb.sql") });
    writeFileSync(
      join(dir, "db-config.json"),
      guideFile("db-config.json", { "/var/lib/cfssl/certs.db": dbFile }),
    );
  }
  const ca = opts.ca ?? makeCa(dir, opts.cn ?? "kubernetes");
  const authKeyHex = opts.authKeyHex ?? randomBytes(16).toString("hex");
  writeFileSync(join(dir, "ca-config.json"), JSON.stringify(caConfig(authKeyHex, opts.profiles)));
  const port = await freePort();
  // Where this CA differs from the guide's unit: loopback, a free port, its own directory.
  const serveArgs = guideServeArgs({
    "-address": "127.0.0.1",
    "-port": String(port),
    "-ca": ca.cert,
    "-ca-key": ca.key,
    "-config": join(dir, "ca-config.json"),
    "-db-config": dbFile ? join(dir, "db-config.json") : undefined,
  });
  const tlsArgs = opts.tls ? makeTlsCert(dir, ca) : [];
  const logFile = join(dir, "cfssl.log");
  let child: ChildProcess | undefined;
  const url = `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`;

  const start = async (): Promise<void> => {
    const { openSync } = await import("node:fs");
    const out = openSync(logFile, "a");
    child = spawn("cfssl", [...serveArgs, ...tlsArgs], {
      stdio: ["ignore", out, out],
    });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`cfssl serve exited: ${readFileSync(logFile, "utf8").slice(-500)}`);
      try {
        execFileSync("curl", ["-sfk", "-o", "/dev/null", "-d", "{}", `${url}/api/v1/cfssl/info`], {
          stdio: "ignore",
        });
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`cfssl serve did not come up on ${url}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once("exit", () => resolve());
      c.kill("SIGTERM");
    });
  };
  const writeAuthKey = (path: string, mode = 0o600): string => {
    writeFileSync(path, `${authKeyHex}\n`, { mode });
    chmodSync(path, mode);
    return path;
  };
  await start();
  return {
    url,
    port,
    dir,
    caCertFile: ca.cert,
    caKeyFile: ca.key,
    caPem: readFileSync(ca.cert, "utf8"),
    pin: opensslPin(ca.cert),
    authKeyHex,
    logFile,
    writeAuthKey,
    installAuthKey(root: string, name = "ca-auth.key"): string {
      mkdirSync(join(root, "etc/node-join"), { recursive: true });
      return writeAuthKey(join(root, "etc/node-join", name));
    },
    stop,
    start,
    signRequests(): number {
      if (!existsSync(logFile)) return 0;
      return (readFileSync(logFile, "utf8").match(/signature request received/g) ?? []).length;
    },
    ...(dbFile ? { dbFile } : {}),
    certificates(): CertificateRow[] {
      const out = sql(
        "SELECT serial_number, authority_key_identifier, ca_label, status, reason, revoked_at FROM certificates ORDER BY rowid",
        true,
      ).trim();
      return out ? (JSON.parse(out) as CertificateRow[]) : [];
    },
    sql(statement: string): void {
      sql(statement);
    },
  };
}
