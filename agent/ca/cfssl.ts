// CFSSL's API (cloudflare/cfssl api/ and auth/): /info for the CA certificate, /authsign with an
// HMAC over the exact request bytes when an auth key is configured, /sign otherwise.
import { createHmac } from "node:crypto";
import { CaRefusedError, NoRevocationError, UsageError } from "../common/errors.js";
import { TransientError } from "./retry.js";
import { secretEnvName, type KeyedMac, type SecretKind } from "./secrets.js";
import type { CertInfo } from "../pki/x509.js";
import { peculiar } from "../pki/peculiar.js";
import type { CaDescriptor } from "../pki/cas.js";
import { inspect } from "../store/fsio.js";
import type {
  BackendContext,
  CaBackend,
  CommonCaSettings,
  RevokeRequest,
  SignRequest,
} from "./backend.js";
import type { CfsslSettings } from "./cfssl-settings.js";
import {
  baseUrl,
  CaServers,
  notIssuedToANode,
  notTrusted,
  parseCaPem,
  retrying,
  revokedLeaf,
  authenticateServer,
} from "./common.js";
import { httpRequest, notCaApi, type TlsTrust } from "./http.js";
import { probeRequest, tlsChain, type Probed, type ProbeRequest } from "./probe.js";
import { caSettingName } from "./trust.js";

interface Envelope {
  success: boolean;
  result?: unknown;
  errors?: { code?: number; message?: string }[];
}

export function parseEnvelope(body: string, what: string): Envelope {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new CaRefusedError(`${what}: answer is not JSON (${JSON.stringify(body.slice(0, 80))})`);
  }
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    typeof (parsed as Envelope).success !== "boolean"
  ) {
    throw new CaRefusedError(`${what}: answer is not a CFSSL response (no "success" field)`);
  }
  return parsed as Envelope;
}

function envelopeErrors(env: Envelope): string {
  const msgs = (Array.isArray(env.errors) ? env.errors : [])
    .map((e) => (typeof e?.message === "string" ? e.message : JSON.stringify(e)))
    .filter(Boolean);
  return msgs.length ? msgs.join("; ") : "no reason given";
}

/** Throws the CA's refusal, naming `what` was refused, when the envelope is not a success. */
function checkSuccess(env: Envelope, what: string): void {
  if (!env.success) throw new CaRefusedError(`${what} refused: ${envelopeErrors(env)}`);
}

/**
 * The result.certificate string of a successful envelope, or a CaRefusedError naming what is wrong.
 */
export function resultCertificate(env: Envelope, what: string): string {
  checkSuccess(env, what);
  const cert = (env.result as { certificate?: unknown } | undefined)?.certificate;
  if (typeof cert !== "string" || cert.trim() === "")
    throw new CaRefusedError(`${what}: answer holds no certificate`);
  return cert;
}

/** The authsign body given the token, HMAC-SHA256(key, request bytes) computed where the key is. */
function authsignBody(requestJson: string, token: Buffer, timestamp: number): string {
  return JSON.stringify({
    token: token.toString("base64"),
    request: Buffer.from(requestJson).toString("base64"),
    timestamp,
  });
}

/**
 * A CFSSL CA as messages name it: "CA kubernetes (cfssl http://ca:8888 label primary)" at one
 * server, without the server for the CA as a whole.
 */
function cfsslName(ca: CaDescriptor, s: CommonCaSettings): (server?: string) => string {
  const label = s.label ? ` label ${s.label}` : "";
  return (server) => `CA ${ca.display} (cfssl${server ? ` ${server}` : ""}${label})`;
}

const DROPPED_AUTH_KEY = (
  ca: CaDescriptor,
  s: CommonCaSettings,
  file: string,
  name: string,
): string =>
  `${new CaServers(s.urls, undefined, cfsslName(ca, s)).whole}: the auth key was dropped after join (renew.authKey: drop); put it back at ${file} (${name}) or re-enrol with node-join join`;

/** CFSSL's one secret: the HMAC key of the profiles that require authentication (auth/auth.go). */
export const CFSSL_SECRETS: readonly SecretKind[] = [
  {
    setting: "authKeyFile",
    what: "CA auth key file",
    flag: "ca-auth-key-file",
    envName: (ca) => secretEnvName(ca, "AUTH_KEY"),
    // cfssl's auth.New hex-decodes the key from its config; ours must decode the same way.
    check: (v) =>
      /^([0-9a-fA-F]{2})+$/.test(v)
        ? undefined
        : "is not hex (CFSSL auth keys are hex strings, as in the CA's config)",
    dropped: (ca, s, file, name) => DROPPED_AUTH_KEY(ca, s, file, name),
  },
];

/**
 * How `renew` authenticates to a CFSSL CA (status --wide and --json; README "Renewal paths"):
 * with the auth key file, which renew.authKey: drop may have deleted, or with no key at all when
 * the CA's profiles take unauthenticated requests. `shown` turns a path into the one messages show.
 */
export function cfsslRenewalPath(
  s: CfsslSettings,
  o: { authKeyDropped: boolean; shown: (path: string) => string },
): string {
  if (!s.authKeyFile) return "no auth (unauthenticated profile)";
  if (s.identity === "tpm")
    return inspect(s.authKeyFile).kind === "missing"
      ? "auth key in the TPM"
      : `auth key ${o.shown(s.authKeyFile)}, into the TPM at the next join`;
  if (inspect(s.authKeyFile).kind !== "missing") return `auth key ${o.shown(s.authKeyFile)}`;
  return o.authKeyDropped
    ? "auth key dropped: re-enrol"
    : `auth key ${o.shown(s.authKeyFile)} (missing)`;
}

/** One envelope from the CA's servers (createCfsslBackend's call). */
type Call = (
  path: string,
  body: string,
  notFound?: (from: string) => Error,
) => Promise<{ env: Envelope; from: string }>;

/** The extended key usages, as CFSSL's config names them, a certificate of each request needs. */
const NEEDED_USAGES: Record<SignRequest["profile"], string[]> = {
  client: ["client auth"],
  serving: ["server auth"],
  peer: ["server auth", "client auth"],
};

/** The profile a request names (the peer profile defaults to the serving one), and its setting. */
function profileOf(
  s: CfsslSettings,
  which: SignRequest["profile"],
): { name?: string; flag: string; setting: string } {
  if (which === "client")
    return { name: s.clientProfile, flag: "client-profile", setting: "clientProfile" };
  if (which === "peer" && s.peerProfile !== undefined)
    return { name: s.peerProfile, flag: "peer-profile", setting: "peerProfile" };
  return { name: s.servingProfile, flag: "serving-profile", setting: "servingProfile" };
}

/**
 * A named profile is checked before the first request that uses it: CFSSL signs (and describes)
 * a profile its config does not have with its default profile (cloudflare/cfssl signer.Profile),
 * so a mistyped name surfaces only as a certificate without the usage it needs. /api/v1/cfssl/info
 * with the profile answers its usages (signer/local Info): one that lacks what the request needs is
 * the profile's fault, named with its setting. A server whose info has no usages is not judged.
 */
async function checkProfile(
  ctx: BackendContext<CfsslSettings>,
  call: Call,
  which: SignRequest["profile"],
): Promise<void> {
  const s = ctx.settings;
  const p = profileOf(s, which);
  if (p.name === undefined) return;
  const body = JSON.stringify({ profile: p.name, ...(s.label ? { label: s.label } : {}) });
  const { env, from } = await call("/api/v1/cfssl/info", body);
  const usages = (env.result as { usages?: unknown } | undefined)?.usages;
  if (!env.success || !Array.isArray(usages)) return;
  const missing = NEEDED_USAGES[which].filter((u) => !usages.includes(u));
  if (missing.length === 0) return;
  throw new UsageError(
    `${caSettingName(ctx.ca, p.flag, p.setting)}: ${from} describes profile "${p.name}" with the usages ${usages.join(", ") || "(none)"}, without ${missing.join(" and ")}: CFSSL answers for a profile its config does not have with its default profile; check the name against the signing profiles of the CA's config (ca-config.json)`,
  );
}

/**
 * `/api/v1/cfssl/authsign` with the profile's auth key, or `/api/v1/cfssl/sign` without one
 * (cloudflare/cfssl api/signhandler): the PEM chain of the signed CSR.
 */
async function sign(
  ctx: BackendContext<CfsslSettings>,
  call: Call,
  req: SignRequest,
): Promise<string> {
  const s = ctx.settings;
  const profile = profileOf(s, req.profile).name;
  const hosts = [...req.template.sans.dnsNames, ...req.template.sans.ips];
  const signRequest = JSON.stringify({
    certificate_request: req.csrPem,
    ...(hosts.length ? { hosts } : {}),
    ...(profile ? { profile } : {}),
    ...(s.label ? { label: s.label } : {}),
  });
  // Read and checked before the run's first request to any CA (secrets.ts readCaSecrets), or held
  // in the TPM (identity: tpm, engine/tpm-keys.ts), which computes the token.
  const file = ctx.secrets.authKeyFile;
  const key: KeyedMac | undefined =
    ctx.secrets.authMac ??
    (file && {
      source: file.source,
      mac: async (data) =>
        createHmac("sha256", Buffer.from(file.value, "hex")).update(data).digest(),
    });
  // Configured but not read: the only way is a key renew.authKey: drop deleted (readCaSecrets).
  if (!key && s.authKeyFile !== undefined)
    throw new UsageError(
      DROPPED_AUTH_KEY(
        ctx.ca,
        s,
        s.authKeyFile,
        caSettingName(ctx.ca, "ca-auth-key-file", "authKeyFile"),
      ),
    );
  const { env, from } = key
    ? await call(
        "/api/v1/cfssl/authsign",
        authsignBody(
          signRequest,
          await key.mac(Buffer.from(signRequest)),
          Math.floor(ctx.clock.now() / 1000),
        ),
      )
    : await call("/api/v1/cfssl/sign", signRequest, (from) =>
        unauthenticated(ctx, `${from} signing ${req.kind} (profile ${profile ?? "default"})`),
      );
  try {
    return resultCertificate(
      env,
      `${from} signing ${req.kind}${profile ? ` (profile ${profile})` : ""}`,
    );
  } catch (err) {
    if (!key && err instanceof CaRefusedError && /authentication required/.test(err.message))
      throw unauthenticated(ctx, `${from} signing ${req.kind} (profile ${profile ?? "default"})`);
    // CFSSL signs an unknown profile name with its default profile; when that one has no auth
    // key the only symptom is this message, so name the likely cause.
    if (err instanceof CaRefusedError && /no authentication provider/.test(err.message)) {
      throw new CaRefusedError(
        `${err.message} (the CA has no profile "${profile ?? "default"}" with an auth key: check the profile name)`,
      );
    }
    // cfssl's authsign handler answers a token that its HMAC check rejects with "invalid
    // token" and nothing else (api/signhandler): the one cause is the key.
    if (key && err instanceof CaRefusedError && /invalid token/.test(err.message)) {
      throw new CaRefusedError(
        `${err.message}: the CA refused the auth key read from ${key.source} (check that it is the key of ${profile ? `profile "${profile}"` : "the default profile"} in the CA's config)`,
      );
    }
    throw err;
  }
}

/**
 * A signing request without the auth key that the CA's profile requires. cfssl serve answers it
 * with "authentication required" for a profile with an auth_key, and does not serve
 * /api/v1/cfssl/sign at all (a plain 404) when its default profile has one (cli/serve:
 * signhandler.NewHandlerFromSigner refuses a signer whose default policy authenticates).
 */
function unauthenticated(ctx: BackendContext<CfsslSettings>, from: string): CaRefusedError {
  const flag = caSettingName(ctx.ca, "ca-auth-key-file", "authKeyFile");
  return new CaRefusedError(
    `${from}: the CA refused an unauthenticated signing request (its profile requires an auth key): give the profile's auth key with ${flag}`,
  );
}

export function createCfsslBackend(ctx: BackendContext<CfsslSettings>): CaBackend {
  const s = ctx.settings;
  const servers = new CaServers(s.urls, ctx.preferredUrl, cfsslName(ctx.ca, s));
  let fetched = false;
  let tls: TlsTrust | undefined;
  let offered: CertInfo[] = [];
  let lastDate: Date | undefined;
  const profilesChecked = new Map<SignRequest["profile"], Promise<void>>();

  /**
   * The envelope a server answered, and the CA at that server as messages name it. `notFound`: the
   * error for a plain 404, an endpoint the server did not set up.
   */
  const call = async (
    path: string,
    body: string,
    notFound?: (from: string) => Error,
  ): Promise<{ env: Envelope; from: string }> =>
    retrying(ctx, servers, async (url, timeoutMs) => {
      const from = servers.describe(url);
      const res = await httpRequest({
        method: "POST",
        url: `${baseUrl(url)}${path}`,
        body,
        timeoutMs,
        // Authenticated once for the CA; every server of it must prove to be that CA.
        tls: url.startsWith("https:") ? tls : undefined,
        ...(ctx.proxy ? { proxy: ctx.proxy } : {}),
        what: from,
      });
      if (res.date) lastDate = res.date;
      // A CFSSL envelope is the CA speaking, whatever the status; anything else at 500, 502-504
      // is a proxy or a crash.
      const isJson = res.body.trimStart().startsWith("{");
      if (res.status >= 500 && !isJson && res.status !== 501) {
        throw new TransientError(`HTTP ${res.status}`);
      }
      if (res.status === 502 || res.status === 503 || res.status === 504)
        throw new TransientError(`HTTP ${res.status}`);
      if (notFound && res.status === 404 && !isJson) throw notFound(from);
      // CFSSL answers every error it makes with an envelope; a page (a web server's 404 or 405,
      // a 501) is another server at this URL, the same on every retry.
      if (res.status >= 300 && !isJson) throw notCaApi(from, "CFSSL", res.status, res.body);
      return { env: parseEnvelope(res.body, from), from };
    });

  /**
   * `/api/v1/cfssl/revoke` (cloudflare/cfssl api/revoke): marks the certificate revoked in the
   * CA's certificate database, matched by serial AND authority key id as stored. Debian's cfssl 1.2
   * stores every certificate with an empty authority key id; later versions store the leaf's AKI
   * in hex (signer/local: hex.EncodeToString(AuthorityKeyId)). So the empty one is sent first, and
   * on "certificate not found" the leaf's own. The endpoint takes no authentication (README:
   * CFSSL, Revocation), and revoking twice succeeds: a retried leave is harmless.
   */
  const revoke = async (req: RevokeRequest): Promise<void> => {
    if (!fetched) throw new Error("cfssl backend: fetchCaBundle must run before revoke");
    const { leaf, serial } = revokedLeaf(req.certPem, req.kind);
    const x509 = await peculiar();
    const aki = new x509.X509Certificate(leaf.pem)
      .getExtension(x509.AuthorityKeyIdentifierExtension)
      ?.keyId?.toLowerCase();
    const what = `revoking ${req.kind} (serial ${serial})`;
    const noDatabase = (from: string) =>
      new NoRevocationError(
        `${from}: cannot revoke ${req.kind} (serial ${serial}): the CA has no certificate database (cfssl serve -db-config): revoke it there once it has one, or let it expire`,
      );
    const tried: string[] = [];
    for (const id of ["", ...(aki ? [aki] : [])]) {
      const body = JSON.stringify({ serial, authority_key_id: id, reason: req.reason });
      const { env, from } = await call("/api/v1/cfssl/revoke", body, noDatabase);
      tried.push(id === "" ? '""' : id);
      if (env.success) return;
      if (!/certificate not found/.test(envelopeErrors(env))) checkSuccess(env, `${from} ${what}`);
    }
    throw new CaRefusedError(
      `${servers.description} ${what} refused: the CA's certificate database holds no such certificate (authority key id ${tried.join(" nor ")}): it was issued by another CA, or before the CA had its database`,
    );
  };

  return {
    get description() {
      return servers.description;
    },
    answered: () => servers.answered(),
    lastDate: () => lastDate,
    offered: () => offered,
    async fetchCaBundle(): Promise<CertInfo[]> {
      const { env, from } = await call(
        "/api/v1/cfssl/info",
        JSON.stringify(s.label ? { label: s.label } : {}),
      );
      const sent = parseCaPem(resultCertificate(env, `${from} info`), from, "info answer");
      const server = authenticateServer(ctx, sent, from, notIssuedToANode);
      const anchors = server.anchors;
      tls = server.tls;
      offered = notTrusted(sent, anchors);
      fetched = true;
      return anchors;
    },
    async sign(req: SignRequest): Promise<string> {
      if (!fetched) throw new Error("cfssl backend: fetchCaBundle must run before sign");
      // Once per request profile and run: a control plane's many serving certificates share one.
      let checked = profilesChecked.get(req.profile);
      if (!checked)
        profilesChecked.set(req.profile, (checked = checkProfile(ctx, call, req.profile)));
      await checked;
      return sign(ctx, call, req);
    },
    revoke,
  };
}

/**
 * `node-join probe` for CFSSL: the unauthenticated /api/v1/cfssl/info (cloudflare/cfssl
 * api/info), which serves the signer's certificate to anyone, and the TLS chain over https.
 */
export async function probeCfssl(p: ProbeRequest): Promise<Probed> {
  const what = `CFSSL ${p.url}${p.label ? ` label ${p.label}` : ""}`;
  const body = JSON.stringify(p.label ? { label: p.label } : {});
  const res = await probeRequest(p, what, "/api/v1/cfssl/info", "POST", body);
  if (res.status >= 300 && !res.body.trimStart().startsWith("{"))
    throw notCaApi(what, "CFSSL", res.status, res.body);
  const cert = resultCertificate(parseEnvelope(res.body, what), `${what} info`);
  return {
    served: parseCaPem(cert, what, "info answer"),
    tls: await tlsChain(p.url, p.timeoutMs, what),
  };
}
