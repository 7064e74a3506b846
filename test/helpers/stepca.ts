// A real smallstep step-ca (0.19.0, built from Debian's Go sources by
// scripts/stepca-build.sh) for tests: no mocks. Only node: built-ins (and scripts/lib/args.ts for
// the join command lines).
//
// const ca = await startStepCa(); // workers (O fixed to system:nodes) + control-plane (O from CSR)
//   (x5cProvisioners: X5C provisioners in the same ca.json, e.g. for a test's machine CA)
//   const ott = await ca.mintToken("workers", "system:node:w1", ["w1", "10.0.0.5"]);
//   ... POST `${ca.url}/1.0/sign` {csr, ott} ...
//   await ca.stop();
//
// Facts worth knowing (step-ca 0.19):
// - Tokens are single use (jti stored in the CA's bbolt db) and refused when
//   their iat is before the CA process started: restart() invalidates tokens
//   minted earlier unless startStepCa({disableIssuedAtCheck: true}).
// - All token failures answer a generic 401; the reason is in the log
//   (stepCaLog(handle)). Policy failures (CN/SAN/duration) answer 403.
// - Renewal of an EXPIRED certificate cannot go over mTLS (the TLS handshake
//   rejects it); it needs POST /1.0/renew with "Authorization: Bearer
//   <x5cInsecure token>" (mintRenewToken) and allowRenewalAfterExpiry on the
//   provisioner that issued it (the harness default: true).
import { shared } from "./fixture.js";
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes, X509Certificate } from "node:crypto";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  controlPlaneNodeFlags,
  flags,
  TEST_API_SERVER,
  type Flags,
} from "../../scripts/lib/args.js";

export interface StepCaProvisionerSpec {
  name: string;
  /**
   * Subject O forced on every certificate of this provisioner; omitted = the CSR's O and OU are
   * kept.
   */
  organization?: string[];
  /** Overrides of the claims (defaults: minTLSCertDuration 5m, maxTLSCertDuration 720h,
   * defaultTLSCertDuration 24h, disableRenewal false, allowRenewalAfterExpiry true). */
  claims?: Record<string, string | boolean>;
}

/**
 * An X5C provisioner (step-ca authority/provisioner/x5c.go): it enrols whoever signs a token with
 * the key of a certificate that `roots` issued (clientAuth, digitalSignature). Its template and
 * claims are the JWK provisioners' (stepinit writes them; the harness then makes it X5C).
 */
export interface StepCaX5cProvisionerSpec extends StepCaProvisionerSpec {
  /**
   * PEM: the CA certificate(s) of the machine certificates it accepts; "ca-root": this step-ca's
   * own root (machine certificates it issued through a JWK provisioner).
   */
  roots: string;
  /**
   * A template file of docs/ca/step-ca/ in place of the JWK provisioners' (nodes.tpl or
   * control-plane.tpl), as the guide's provisioner JSON names it: "x5c-nodes.tpl" refuses tokens
   * signed by a Kubernetes identity (docs/tpm.md).
   */
  template?: string;
}

export interface StartStepCaOptions {
  /** Default: [{name: "workers", organization: ["system:nodes"]}, {name: "control-plane"}]. */
  provisioners?: StepCaProvisionerSpec[];
  /** X5C provisioners beside the JWK ones (default: none). */
  x5cProvisioners?: StepCaX5cProvisionerSpec[];
  /**
   * authority.disableIssuedAtCheck: accept tokens minted before the CA (re)started. Default false
   * (step's default).
   */
  disableIssuedAtCheck?: boolean;
  /** Keep the temp dir after stop() (also with STEPCA_KEEP_DIR=1). */
  keepDir?: boolean;
  /** Readiness timeout for GET /health, default 15000 ms. */
  readyTimeoutMs?: number;
}

export interface StepCaProvisioner {
  name: string;
  password: string;
  /** Mode 0600 file holding `password` (no trailing newline). */
  passwordFile: string;
  /** JWK thumbprint (the token header kid). */
  kid: string;
  /** The O forced by this provisioner's template, or undefined when the CSR's O is kept. */
  organization: string[] | undefined;
}

export interface MintTokenOptions {
  /** Token lifetime as a Go duration, default "5m". */
  ttl?: string;
  /** aud claim, default `${caUrl}/1.0/sign`. */
  audience?: string;
  /** jti claim, default random. */
  jti?: string;
  /** Base URL used for the default audience, default handle.url. */
  caUrl?: string;
}

export interface StepCaHandle {
  /**
   * "https://127.0.0.1:<port>". The server certificate has SANs DNS:localhost and IP:127.0.0.1, so
   * both work.
   */
  url: string;
  /** "https://localhost:<port>" (same server). */
  localhostUrl: string;
  host: string;
  port: number;
  /**
   * Temp dir: ca.json, root.crt, root.key, intermediate.crt, intermediate.key (encrypted PKCS#8),
   * db/, secrets/.
   */
  dir: string;
  configFile: string;
  rootPem: string;
  rootFile: string;
  /**
   * The roots the harness verifies the CA's TLS against, when not rootPem alone: what
   * reconfigureStepCa configured (a rotation's new root signs the CA's TLS certificate).
   */
  trustPem?: string;
  /** sha256 hex (lowercase) of the root DER, as `step ca bootstrap --fingerprint` wants it. */
  rootFingerprint: string;
  intermediatePem: string;
  intermediateFile: string;
  /** Password of root.key and intermediate.key, and its 0600 file. */
  caPassword: string;
  caPasswordFile: string;
  provisioners: StepCaProvisioner[];
  /** The X5C provisioners, with the O their template forces (undefined: the CSR's). */
  x5cProvisioners: { name: string; organization: string[] | undefined }[];
  /** step-ca's stdout+stderr (appended across restarts). */
  logFile: string;
  /** PID of the running step-ca, undefined when stopped. */
  readonly pid: number | undefined;
  bin: { stepCa: string; stepinit: string };
  /**
   * A one-time token like `step ca token`, minted with real smallstep code
   * (go.step.sm/crypto/jose).
   */
  mintToken(
    provisioner: string,
    subject: string,
    sans: string[],
    opts?: MintTokenOptions,
  ): Promise<string>;
  /**
   * An x5cInsecure renew token signed by the certificate's key (for POST /1.0/renew with
   * Authorization: Bearer).
   */
  mintRenewToken(
    certChainPem: string,
    keyPem: string,
    opts?: { ttl?: string; caUrl?: string },
  ): Promise<string>;
  /** SIGTERM, then SIGKILL after 5 s; removes dir unless keepDir. Idempotent. */
  /** Ends the CA process and frees its port, keeping its files: restart() starts it again. */
  pause(): Promise<void>;
  stop(): Promise<void>;
  /** Stops and starts the same CA (same dir, port, db); waits for /health. */
  restart(): Promise<void>;
}

/**
 * The fields of step-ca's answers the tests read. Declared present: a test that reads one the
 * answer lacks gets undefined and fails its assertion, which is the point.
 */
export interface StepCaJson {
  ca: string;
  crt: string;
  certChain: string[];
  message: string;
  status: string;
}

export interface StepCaResponse {
  status: number;
  body: string;
  /** Parsed JSON body; no field is set when the body is not JSON. */
  json: StepCaJson;
}

const DEFAULT_PROVISIONERS: StepCaProvisionerSpec[] = [
  { name: "workers", organization: ["system:nodes"] },
  { name: "control-plane" },
];

const BUILD_SCRIPT = fileURLToPath(new URL("../../scripts/stepca-build.sh", import.meta.url));

function run(
  file: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (err) {
          const e = new Error(
            `${file} ${args.join(" ")} failed: ${err.message}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`,
          );
          reject(e);
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

let buildPromise: Promise<{ stepCa: string; stepinit: string }> | undefined;

/** Runs scripts/stepca-build.sh once per process and returns the binary paths. */
export function buildStepCa(): Promise<{ stepCa: string; stepinit: string }> {
  buildPromise ??= (async () => {
    const { stdout } = await run("bash", [BUILD_SCRIPT], { timeoutMs: 15 * 60_000 });
    const paths: Record<string, string> = {};
    for (const line of stdout.split("\n")) {
      const m = /^(step-ca|stepinit)=(.+)$/.exec(line.trim());
      if (m) paths[m[1]!] = m[2]!;
    }
    if (!paths["step-ca"] || !paths["stepinit"]) {
      throw new Error(`stepca-build.sh printed no binary paths:\n${stdout}`);
    }
    return { stepCa: paths["step-ca"], stepinit: paths["stepinit"] };
  })();
  buildPromise.catch(() => {
    buildPromise = undefined;
  });
  return buildPromise;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

/** An HTTPS request to the CA, TLS verified against its root(s) (unless insecure). */
export function stepCaRequest(
  handle: Pick<StepCaHandle, "url" | "rootPem" | "trustPem">,
  path: string,
  opts: {
    method?: string;
    body?: unknown;
    cert?: string;
    key?: string;
    headers?: Record<string, string>;
    insecure?: boolean;
    baseUrl?: string;
  } = {},
): Promise<StepCaResponse> {
  const url = new URL(path, opts.baseUrl ?? handle.url);
  const payload =
    opts.body === undefined
      ? undefined
      : typeof opts.body === "string"
        ? opts.body
        : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: opts.method ?? (payload === undefined ? "GET" : "POST"),
        ca: opts.insecure ? undefined : (handle.trustPem ?? handle.rootPem),
        rejectUnauthorized: !opts.insecure,
        cert: opts.cert,
        key: opts.key,
        agent: false,
        headers: {
          ...(payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
          ...opts.headers,
        },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          let json: StepCaJson;
          try {
            json = JSON.parse(body) as StepCaJson;
          } catch {
            json = {} as StepCaJson;
          }
          resolve({ status: res.statusCode ?? 0, body, json });
        });
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout: ${url}`)));
    req.on("error", reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Never leave a step-ca behind a crashed or forgetful test process.
  process.on("exit", () => {
    for (const c of live) {
      try {
        c.kill("SIGKILL");
      } catch {
        /* already gone */
      }
    }
  });
}

const logCache = new WeakMap<StepCaHandle, string>();

/** The whole step-ca log so far (still readable after stop() removed the dir). */
export function stepCaLog(handle: StepCaHandle): string {
  try {
    return readFileSync(handle.logFile, "utf8");
  } catch {
    return logCache.get(handle) ?? "";
  }
}

/** A step-ca as a join names it: where it answers and the fingerprint of its root. */
export type StepCaEndpoint = Pick<StepCaHandle, "url" | "rootFingerprint">;

/**
 * One step-ca: `--<prefix>ca-type step-ca`, `--<prefix>ca-url`, `--<prefix>ca-fingerprint`, then
 * `--<prefix>ca-provisioner` and `--<prefix>ca-password-file` when given (prefix "" for the cluster
 * CA, "front-proxy-" or "etcd-").
 */
export function stepCaFlags(
  ca: StepCaEndpoint,
  provisioner?: string,
  passwordFile?: string,
  prefix = "",
): Flags {
  return {
    [`${prefix}ca-type`]: "step-ca",
    [`${prefix}ca-url`]: ca.url,
    [`${prefix}ca-fingerprint`]: ca.rootFingerprint,
    [`${prefix}ca-provisioner`]: provisioner,
    [`${prefix}ca-password-file`]: passwordFile,
  };
}

/**
 * The join of control plane cp9 (127.0.0.19, behind cp.lab:6443) whose three CAs are the one
 * step-ca `ca`, enrolled with the control-plane provisioner's password in `passwordFile`.
 */
export function stepControlPlaneJoin(
  root: string,
  ca: StepCaEndpoint,
  passwordFile: string,
  more: Flags = {},
): string[] {
  const node = { root, ...controlPlaneNodeFlags("cp9", "127.0.0.19") };
  return [
    "join",
    ...flags({ ...node, ...stepCaFlags(ca, "control-plane", passwordFile), ...more }),
  ];
}

/**
 * The standard worker join against a step-ca: `join --root <root> --api-server
 * https://10.0.0.1:6443`, the CA (stepCaFlags, no provisioner), `--node-name w1 --ip 10.0.0.21`;
 * `more` changes or drops these flags where they stand and adds others after them, as for
 * cfsslWorkerFlags (scripts/lib/args.ts).
 */
export function stepWorkerJoin(root: string, ca: StepCaEndpoint, more: Flags = {}): string[] {
  return [
    "join",
    ...flags({
      root,
      "api-server": TEST_API_SERVER,
      ...stepCaFlags(ca),
      "node-name": "w1",
      ip: "10.0.0.21",
      ...more,
    }),
  ];
}

function tail(s: string, n = 40): string {
  return s.split("\n").slice(-n).join("\n");
}

/** The step-ca guide's templates (docs/ca-step-ca.md): the CA reads them from there. */
const GUIDE_TEMPLATES = fileURLToPath(new URL("../../docs/ca/step-ca/", import.meta.url));

interface ProvisionerOptions {
  x509: { template?: string; templateData?: { organization?: string[] } };
}

/**
 * stepinit's x509 options with its inline template replaced by the guide's template file:
 * nodes.tpl (O fixed by templateData) or control-plane.tpl (O from the CSR), as the guide's
 * provisioner fragments name them (step-ca's options.x509.templateFile), or `template` (an X5C
 * spec's, e.g. x5c-nodes.tpl).
 */
function guideTemplate(options: ProvisionerOptions, template?: string): ProvisionerOptions {
  const { template: _inline, ...x509 } = options.x509;
  const file = template ?? (x509.templateData?.organization ? "nodes.tpl" : "control-plane.tpl");
  return {
    ...options,
    x509: { ...x509, templateFile: join(GUIDE_TEMPLATES, file) } as ProvisionerOptions["x509"],
  };
}

export async function startStepCa(opts: StartStepCaOptions = {}): Promise<StepCaHandle> {
  const bin = await buildStepCa();
  installExitHook();
  const specs = opts.provisioners ?? DEFAULT_PROVISIONERS;
  const keepDir = opts.keepDir ?? process.env["STEPCA_KEEP_DIR"] === "1";
  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;

  const dir = await mkdtemp(join(tmpdir(), "node-join-stepca-"));
  const secrets = join(dir, "secrets");
  await mkdir(secrets, { mode: 0o700 });
  await mkdir(join(dir, "steppath"), { mode: 0o700 });
  const writeSecret = async (name: string, value: string): Promise<string> => {
    const f = join(secrets, name);
    await writeFile(f, value, { mode: 0o600 });
    await chmod(f, 0o600);
    return f;
  };
  const caPassword = randomBytes(24).toString("base64url");
  const caPasswordFile = await writeSecret("ca.password", caPassword);

  const provSpecs: {
    name: string;
    passwordFile: string;
    organization?: string[];
    claims?: Record<string, string | boolean>;
  }[] = [];
  const passwords = new Map<string, { password: string; passwordFile: string }>();
  for (const [i, p] of specs.entries()) {
    const password = randomBytes(24).toString("base64url");
    const passwordFile = await writeSecret(`provisioner-${i}.password`, password);
    passwords.set(p.name, { password, passwordFile });
    provSpecs.push({
      name: p.name,
      passwordFile,
      ...(p.organization ? { organization: p.organization } : {}),
      ...(p.claims ? { claims: p.claims } : {}),
    });
  }
  // stepinit writes the X5C provisioners as JWK ones (same template and claims code); their key
  // is replaced by their roots below.
  const x5cSpecs = opts.x5cProvisioners ?? [];
  for (const [i, p] of x5cSpecs.entries()) {
    provSpecs.push({
      name: p.name,
      passwordFile: await writeSecret(`x5c-${i}.password`, randomBytes(24).toString("base64url")),
      ...(p.organization ? { organization: p.organization } : {}),
      ...(p.claims ? { claims: p.claims } : {}),
    });
  }
  const specFile = join(dir, "provisioners.json");
  await writeFile(specFile, JSON.stringify(provSpecs, null, 2));

  let port = await freePort();
  const caDir = join(dir, "ca");
  const initArgs = [
    "init",
    "-out",
    caDir,
    "-port",
    String(port),
    "-password-file",
    caPasswordFile,
    "-provisioners",
    specFile,
  ];
  if (opts.disableIssuedAtCheck) initArgs.push("-disable-iat-check");
  const { stdout } = await run(bin.stepinit, initArgs);
  const summary = JSON.parse(stdout) as {
    rootFingerprint: string;
    config: string;
    provisioners: { name: string; kid: string }[];
  };
  const configFile = summary.config;
  const cfg = JSON.parse(await readFile(configFile, "utf8")) as {
    authority: { provisioners: Record<string, unknown>[] };
  };
  const ownRoot = await readFile(join(caDir, "root.crt"), "utf8");
  cfg.authority.provisioners = cfg.authority.provisioners.map((p) => {
    const x = x5cSpecs.find((s) => s.name === p["name"]);
    const options = guideTemplate(p["options"] as ProvisionerOptions, x?.template);
    // X5C.Roots is a Go []byte: base64 in JSON.
    return x
      ? {
          type: "X5C",
          name: x.name,
          roots: Buffer.from(x.roots === "ca-root" ? ownRoot : x.roots).toString("base64"),
          claims: p["claims"],
          options,
        }
      : { ...p, options };
  });
  await writeFile(configFile, JSON.stringify(cfg, null, "\t"), { mode: 0o600 });
  const rootFile = join(caDir, "root.crt");
  const intermediateFile = join(caDir, "intermediate.crt");
  const rootPem = await readFile(rootFile, "utf8");
  const intermediatePem = await readFile(intermediateFile, "utf8");
  const fp = createHash("sha256").update(new X509Certificate(rootPem).raw).digest("hex");
  if (fp !== summary.rootFingerprint)
    throw new Error(`root fingerprint mismatch: ${fp} vs ${summary.rootFingerprint}`);

  const logFile = join(dir, "step-ca.log");
  let child: ChildProcess | undefined;
  let stopped = false;

  const spawnCa = (): ChildProcess => {
    const fd = openSync(logFile, "a");
    try {
      const c = spawn(bin.stepCa, ["-config", configFile], {
        cwd: dir,
        stdio: ["ignore", fd, fd],
        env: {
          ...process.env,
          STEPPATH: join(dir, "steppath"),
          STEPCA_PASSWORD_FILE: caPasswordFile,
        },
      });
      // Unref'd: a test that forgets stop() must not hang its process; the
      // exit hook kills the CA when the process ends.
      c.unref();
      live.add(c);
      c.once("exit", () => live.delete(c));
      return c;
    } finally {
      closeSync(fd);
    }
  };

  const waitReady = async (c: ChildProcess): Promise<void> => {
    const deadline = Date.now() + readyTimeoutMs;
    let exited = false;
    c.once("exit", () => {
      exited = true;
    });
    let lastErr = "";
    while (Date.now() < deadline) {
      if (exited || c.exitCode !== null) {
        throw new Error(
          `step-ca exited (code ${c.exitCode}, signal ${c.signalCode}) before becoming healthy:\n${tail(readFileSync(logFile, "utf8"))}`,
        );
      }
      try {
        const r = await stepCaRequest(handle, "/health");
        if (r.status === 200 && r.json?.status === "ok") return;
        lastErr = `status ${r.status}: ${r.body}`;
      } catch (e) {
        lastErr = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(
      `step-ca not healthy after ${readyTimeoutMs} ms (${lastErr}):\n${tail(readFileSync(logFile, "utf8"))}`,
    );
  };

  const killChild = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const done = new Promise<void>((resolve) => c.once("exit", () => resolve()));
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 5_000);
    await done;
    clearTimeout(t);
  };

  const setPort = async (p: number): Promise<void> => {
    const cfg = JSON.parse(await readFile(configFile, "utf8"));
    cfg.address = `127.0.0.1:${p}`;
    await writeFile(configFile, JSON.stringify(cfg, null, "\t"), { mode: 0o600 });
    port = p;
    handle.port = p;
    handle.url = `https://127.0.0.1:${p}`;
    handle.localhostUrl = `https://localhost:${p}`;
  };

  const startChild = async (allowNewPort: boolean): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const c = spawnCa();
      child = c;
      try {
        await waitReady(c);
        return;
      } catch (e) {
        await killChild();
        const log = readFileSync(logFile, "utf8");
        if (allowNewPort && attempt < 3 && /address already in use/.test(tail(log, 10))) {
          await setPort(await freePort());
          continue;
        }
        throw e;
      }
    }
  };

  const handle: StepCaHandle = {
    url: `https://127.0.0.1:${port}`,
    localhostUrl: `https://localhost:${port}`,
    host: "127.0.0.1",
    port,
    dir,
    configFile,
    rootPem,
    rootFile,
    rootFingerprint: fp,
    intermediatePem,
    intermediateFile,
    caPassword,
    caPasswordFile,
    provisioners: specs.map((p) => {
      const kid = summary.provisioners.find((s) => s.name === p.name)?.kid;
      if (!kid) throw new Error(`stepinit did not report provisioner ${p.name}`);
      const pw = passwords.get(p.name)!;
      return {
        name: p.name,
        password: pw.password,
        passwordFile: pw.passwordFile,
        kid,
        organization: p.organization,
      };
    }),
    x5cProvisioners: x5cSpecs.map((p) => ({ name: p.name, organization: p.organization })),
    logFile,
    get pid() {
      return child && child.exitCode === null ? child.pid : undefined;
    },
    bin,
    async mintToken(provisioner, subject, sans, o = {}) {
      const p = handle.provisioners.find((x) => x.name === provisioner);
      if (!p) throw new Error(`unknown provisioner ${provisioner}`);
      const args = [
        "token",
        "-dir",
        caDir,
        "-provisioner",
        p.name,
        "-password-file",
        p.passwordFile,
        "-subject",
        subject,
      ];
      for (const s of sans) args.push("-san", s);
      args.push("-ca-url", o.caUrl ?? handle.url);
      if (o.ttl) args.push("-ttl", o.ttl);
      if (o.audience) args.push("-audience", o.audience);
      if (o.jti) args.push("-jti", o.jti);
      return (await run(bin.stepinit, args)).stdout.trim();
    },
    async mintRenewToken(certChainPem, keyPem, o = {}) {
      const n = randomBytes(6).toString("hex");
      const certFile = await writeSecret(`renew-${n}.crt`, certChainPem);
      const keyFile = await writeSecret(`renew-${n}.key`, keyPem);
      try {
        const args = [
          "renewtoken",
          "-dir",
          caDir,
          "-cert",
          certFile,
          "-key",
          keyFile,
          "-ca-url",
          o.caUrl ?? handle.url,
        ];
        if (o.ttl) args.push("-ttl", o.ttl);
        return (await run(bin.stepinit, args)).stdout.trim();
      } finally {
        await rm(certFile, { force: true });
        await rm(keyFile, { force: true });
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await killChild();
      try {
        logCache.set(handle, readFileSync(logFile, "utf8"));
      } catch {
        /* no log */
      }
      if (!keepDir) await rm(dir, { recursive: true, force: true });
    },
    async pause() {
      if (stopped) throw new Error("pause() after stop()");
      await killChild();
    },
    async restart() {
      if (stopped) throw new Error("restart() after stop()");
      await killChild();
      await startChild(false);
    },
  };

  try {
    await startChild(true);
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}

/** A CA certificate and its unencrypted key made with openssl: a rotation's new root or signer. */
export interface StepCaKeyPair {
  cert: string;
  key: string;
}

/**
 * A new self-signed root (no `parent`) or an intermediate that `parent` signs, in the CA's dir, as
 * an operator makes them with `step certificate create --profile root-ca|intermediate-ca`.
 */
export function makeStepCaCert(
  handle: Pick<StepCaHandle, "dir">,
  name: string,
  cn: string,
  parent?: StepCaKeyPair,
): StepCaKeyPair {
  const cert = join(handle.dir, `${name}.crt`);
  const key = join(handle.dir, `${name}.key`);
  const ext = join(handle.dir, `${name}.ext`);
  const pathLen = parent ? ",pathlen:0" : "";
  writeFileSync(
    ext,
    `basicConstraints=critical,CA:TRUE${pathLen}\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n`,
  );
  const common = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  const subj = ["-subj", `/CN=${cn}`, "-keyout", key];
  if (!parent) {
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", ...common, ...subj, "-out", cert, "-days", "3650"],
        ...["-extensions", "v3", "-config", opensslConfig(ext)],
      ],
      { stdio: "pipe" },
    );
  } else {
    const csr = join(handle.dir, `${name}.csr`);
    execFileSync("openssl", ["req", "-new", ...common, ...subj, "-out", csr], { stdio: "pipe" });
    execFileSync(
      "openssl",
      [
        ...["x509", "-req", "-in", csr, "-CA", parent.cert, "-CAkey", parent.key],
        ...["-CAcreateserial", "-out", cert, "-days", "1825", "-extfile", ext],
      ],
      { stdio: "pipe" },
    );
  }
  return { cert, key };
}

/** An openssl config whose [v3] section is the extension file's lines (req -x509 -extensions). */
function opensslConfig(ext: string): string {
  const file = `${ext}.cnf`;
  writeFileSync(file, `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${readFileSync(ext, "utf8")}`);
  return file;
}

/**
 * Points the CA at other roots (ca.json "root": GET /roots lists them) and, with `signer`, at
 * another intermediate and key that sign from now on, as an operator edits ca.json; restarts it.
 */
export async function reconfigureStepCa(
  handle: StepCaHandle,
  roots: string[],
  signer?: StepCaKeyPair,
): Promise<void> {
  const config = JSON.parse(readFileSync(handle.configFile, "utf8")) as Record<string, unknown>;
  config.root = roots;
  if (signer) {
    config.crt = signer.cert;
    config.key = signer.key;
  }
  writeFileSync(handle.configFile, JSON.stringify(config, null, 2));
  handle.trustPem = roots.map((f) => readFileSync(f, "utf8")).join("");
  await handle.restart();
}

/**
 * Two provisioners whose certificates (O system:nodes) expire while a test waits, `duration` long
 * (step-ca backdates NotBefore by a minute): "brief", whose certificates step-ca does not renew
 * once expired, and "brief-renewable" (claim allowRenewalAfterExpiry), whose it does.
 */
export function expiringProvisioners(duration: string): StepCaProvisionerSpec[] {
  const claims = { minTLSCertDuration: "1s", defaultTLSCertDuration: duration };
  return [
    {
      name: "brief",
      organization: ["system:nodes"],
      claims: { ...claims, allowRenewalAfterExpiry: false },
    },
    {
      name: "brief-renewable",
      organization: ["system:nodes"],
      claims: { ...claims, allowRenewalAfterExpiry: true },
    },
  ];
}

/** A real step-ca for the whole test file (started before its tests, stopped after). */
export function useStepCa(opts: StartStepCaOptions = {}): StepCaHandle {
  return shared(
    () => startStepCa(opts),
    (ca) => ca.stop(),
  );
}
