// A throwaway CFSSL CA on loopback: a real `cfssl serve` (Debian golang-cfssl) with a fresh CA and
// auth key in a temporary directory. A developer tool: the end-to-end tests (through
// test/helpers/cfssl.ts), `npm run demo`, `npm run bench` and the packaging training run
// (packaging/sea-train-ca.ts) start one each. Only node: built-ins and the cfssl, cfssljson,
// openssl and curl commands (and sqlite3 for a CA with a certificate database).
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
import { CONTROL_PLANE_AUTH_KEYS, type ClusterCas } from "./args.js";

export interface Profile {
  expiry?: string;
  usages?: string[];
  /** Requires the auth key (default true). */
  auth?: boolean;
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

/**
 * The tables of cfssl's sqlite migration (certdb/sqlite/migrations/001_CreateCertificates.sql)
 * with the columns Debian's cfssl 1.2 writes.
 */
const CERTDB_SCHEMA = `
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier)
    REFERENCES certificates(serial_number, authority_key_identifier)
);
`;

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

const SERVER_USAGES = ["signing", "key encipherment", "server auth"];
const CLIENT_USAGES = ["signing", "key encipherment", "client auth"];
const BOTH_USAGES = ["signing", "key encipherment", "server auth", "client auth"];

export const DEFAULT_PROFILES: Record<string, Profile> = {
  // Like most CFSSL configs: the default profile has no auth key, named profiles do.
  default: { usages: ["signing", "key encipherment"], auth: false, expiry: "1h" },
  client: { usages: CLIENT_USAGES },
  serving: { usages: SERVER_USAGES },
  peer: { usages: BOTH_USAGES },
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

function makeCa(dir: string, cn: string): { cert: string; key: string } {
  const csr = join(dir, "ca-csr.json");
  writeFileSync(
    csr,
    JSON.stringify({ CN: cn, key: { algo: "ecdsa", size: 256 }, ca: { expiry: "87600h" } }),
  );
  execFileSync("sh", [
    "-c",
    `cd '${dir}' && cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca`,
  ]);
  return { cert: join(dir, "ca.pem"), key: join(dir, "ca-key.pem") };
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
  const dbArgs: string[] = [];
  if (dbFile) {
    sql(CERTDB_SCHEMA);
    writeFileSync(
      join(dir, "db-config.json"),
      JSON.stringify({ driver: "sqlite3", data_source: dbFile }),
    );
    dbArgs.push(`-db-config=${join(dir, "db-config.json")}`);
  }
  const ca = opts.ca ?? makeCa(dir, opts.cn ?? "kubernetes");
  const authKeyHex = opts.authKeyHex ?? randomBytes(16).toString("hex");
  const profiles = opts.profiles ?? DEFAULT_PROFILES;
  const toPolicy = (p: Profile) => ({
    expiry: p.expiry ?? "8760h",
    usages: p.usages ?? BOTH_USAGES,
    ...(p.auth === false ? {} : { auth_key: "key1" }),
  });
  const { default: def, ...rest } = profiles;
  const config = {
    signing: {
      default: toPolicy(def ?? { usages: BOTH_USAGES }),
      profiles: Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, toPolicy(v)])),
    },
    auth_keys: { key1: { type: "standard", key: authKeyHex } },
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  const port = await freePort();
  const tlsArgs: string[] = [];
  if (opts.tls) {
    // The server certificate is issued by the CA itself, for "localhost" and 127.0.0.1.
    writeFileSync(
      join(dir, "server-csr.json"),
      JSON.stringify({
        CN: "localhost",
        hosts: ["localhost", "127.0.0.1"],
        key: { algo: "ecdsa", size: 256 },
      }),
    );
    writeFileSync(
      join(dir, "tls-config.json"),
      JSON.stringify({ signing: { default: { expiry: "8760h", usages: SERVER_USAGES } } }),
    );
    execFileSync("sh", [
      "-c",
      `cd '${dir}' && cfssl gencert -ca '${ca.cert}' -ca-key '${ca.key}' -config tls-config.json server-csr.json 2>/dev/null | cfssljson -bare server`,
    ]);
    tlsArgs.push(`-tls-cert=${join(dir, "server.pem")}`, `-tls-key=${join(dir, "server-key.pem")}`);
  }
  const logFile = join(dir, "cfssl.log");
  let child: ChildProcess | undefined;
  const url = `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`;

  const start = async (): Promise<void> => {
    const { openSync } = await import("node:fs");
    const out = openSync(logFile, "a");
    child = spawn(
      "cfssl",
      [
        "serve",
        "-address=127.0.0.1",
        `-port=${port}`,
        `-ca=${ca.cert}`,
        `-ca-key=${ca.key}`,
        `-config=${join(dir, "config.json")}`,
        ...tlsArgs,
        ...dbArgs,
      ],
      {
        stdio: ["ignore", out, out],
      },
    );
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
