// CFSSL's API (cloudflare/cfssl api/ and auth/): /info for the CA certificate, /authsign with an
// HMAC over the exact request bytes when an auth key is configured, /sign otherwise.
import { createHmac } from "node:crypto";
import { CaRefusedError } from "../common/errors.js";
import { TransientError } from "./retry.js";
import { secretEnvName, type SecretKind } from "./secrets.js";
import type { CertInfo } from "../pki/x509.js";
import type { BackendContext, CaBackend, SignRequest } from "./backend.js";
import { parseCaPem, retrying, serverTrust } from "./common.js";
import { httpRequest, type TlsTrust } from "./http.js";
import { authenticateCa } from "./trust.js";

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

/**
 * The result.certificate string of a successful envelope, or a CaRefusedError naming what is wrong.
 */
export function resultCertificate(env: Envelope, what: string): string {
  if (!env.success) throw new CaRefusedError(`${what} refused: ${envelopeErrors(env)}`);
  const cert = (env.result as { certificate?: unknown } | undefined)?.certificate;
  if (typeof cert !== "string" || cert.trim() === "")
    throw new CaRefusedError(`${what}: answer holds no certificate`);
  return cert;
}

export function authsignBody(requestJson: string, keyHex: string, timestamp: number): string {
  const key = Buffer.from(keyHex, "hex");
  const token = createHmac("sha256", key).update(requestJson).digest("base64");
  return JSON.stringify({ token, request: Buffer.from(requestJson).toString("base64"), timestamp });
}

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
  },
];

export function createCfsslBackend(ctx: BackendContext): CaBackend {
  const s = ctx.settings;
  const base = s.url.replace(/\/+$/, "");
  const description = `CA ${ctx.ca.display} (cfssl ${base}${s.label ? ` label ${s.label}` : ""})`;
  let tls: TlsTrust | undefined;

  const call = async (path: string, body: string): Promise<Envelope> =>
    retrying(ctx, description, async (timeoutMs) => {
      const res = await httpRequest({
        method: "POST",
        url: `${base}${path}`,
        body,
        timeoutMs,
        tls,
        what: description,
      });
      // A CFSSL envelope is the CA speaking, whatever the status; anything else at 5xx is a proxy
      // or a crash.
      if (res.status >= 500 && !res.body.trimStart().startsWith("{")) {
        throw new TransientError(`HTTP ${res.status}`);
      }
      if (res.status === 502 || res.status === 503 || res.status === 504)
        throw new TransientError(`HTTP ${res.status}`);
      return parseEnvelope(res.body, description);
    });

  return {
    description,
    async fetchCaBundle(): Promise<CertInfo[]> {
      const env = await call(
        "/api/v1/cfssl/info",
        JSON.stringify(s.label ? { label: s.label } : {}),
      );
      const fetched = parseCaPem(
        resultCertificate(env, `${description} info`),
        description,
        "info answer",
      );
      const anchors = authenticateCa(
        ctx.ca,
        fetched,
        s,
        ctx.unsafeSkipCaVerification,
        description,
        ctx.log,
        ctx.pinned,
      );
      if (base.startsWith("https:")) tls = serverTrust(s, anchors, ctx.unsafeSkipCaVerification);
      return anchors;
    },
    async sign(req: SignRequest): Promise<string> {
      if (base.startsWith("https:") && tls === undefined && !ctx.unsafeSkipCaVerification) {
        throw new Error("cfssl backend: fetchCaBundle must run before sign");
      }
      const profile = {
        client: s.clientProfile,
        serving: s.servingProfile,
        peer: s.peerProfile ?? s.servingProfile,
      }[req.profile];
      const hosts = [...req.template.sans.dnsNames, ...req.template.sans.ips];
      const signRequest = JSON.stringify({
        certificate_request: req.csrPem,
        ...(hosts.length ? { hosts } : {}),
        ...(profile ? { profile } : {}),
        ...(s.label ? { label: s.label } : {}),
      });
      // Read and checked before the run's first request to any CA (secrets.ts readCaSecrets).
      const key = ctx.secrets.authKeyFile;
      const env = key
        ? await call(
            "/api/v1/cfssl/authsign",
            authsignBody(signRequest, key.value, Math.floor(ctx.clock.now() / 1000)),
          )
        : await call("/api/v1/cfssl/sign", signRequest);
      try {
        return resultCertificate(
          env,
          `${description} signing ${req.kind}${profile ? ` (profile ${profile})` : ""}`,
        );
      } catch (err) {
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
    },
  };
}
