// step-ca's own settings (stepca.ts, stepca-x5c.ts read them): the root fingerprint step's
// bootstrap takes, how renewals authenticate, and one way to enrol: a JWK provisioner's password
// or one-time tokens, or an X5C provisioner's machine certificate.
import type { CommonCaSettings } from "./backend.js";
import { caOptions, textValue, type CaValues } from "./options.js";

/**
 * How a step-ca renewal authenticates: "mtls" with the current certificate in the TLS handshake
 * (/1.0/rekey, a fresh key), "token" with a token signed by the current key (/1.0/renew, the same
 * key), "auto" mTLS first and the token when the client certificate does not reach the CA.
 */
export const STEP_CA_RENEW_AUTH = ["auto", "mtls", "token"] as const;
export type StepCaRenewAuth = (typeof STEP_CA_RENEW_AUTH)[number];

export interface StepCaSettings extends CommonCaSettings {
  type: "step-ca";
  /** JWK provisioner that node-join mints tokens for (with passwordFile), or X5C one. */
  provisioner?: string;
  passwordFile?: string;
  /** File of one-time tokens minted elsewhere, one per certificate. */
  tokenFile?: string;
  /** How renewals authenticate (default auto: mTLS, a token when mTLS is refused). */
  renewAuth?: StepCaRenewAuth;
  /**
   * X5C enrolment: the machine certificate (then its intermediates) and its key, which sign the
   * one-time tokens (stepca-x5c.ts).
   */
  x5cCertFile?: string;
  x5cKeyFile?: string;
  /**
   * identity: tpm: X5C enrolment with a machine key created in the TPM, its certificate obtained
   * once with a one-time token (engine/tpm-x5c.ts); kubelet certificates are enrolled and renewed
   * with it. Unset: file.
   */
  identity?: "file" | "tpm";
}

/** How a CA's own settings enrol: a machine certificate (X5C) or a JWK provisioner. */
function enrolmentWay(value: CaValues): "x5c" | "jwk" | undefined {
  if (value("x5cCertFile") !== undefined || value("x5cKeyFile") !== undefined) return "x5c";
  if (value("passwordFile") !== undefined || value("tokenFile") !== undefined) return "jwk";
  return undefined;
}

/**
 * One way to enrol per CA: a CA enrolling another way than the kubernetes CA (its own password or
 * token file where that one has a machine certificate, or the reverse) takes none of that CA's
 * enrolment settings, nor its provisioner, which names the other way's: both ways at once would be
 * exit 2. The same way (a token file of its own beside the shared password) inherits.
 */
const sameEnrolment = (own: CaValues, kubernetes: CaValues): boolean => {
  const mine = enrolmentWay(own);
  const theirs = enrolmentWay(kubernetes);
  return mine === undefined || theirs === undefined || mine === theirs;
};

export const STEPCA_OPTIONS = caOptions([
  {
    field: "fingerprint",
    flag: "ca-fingerprint",
    kind: "string",
    valueName: "hex",
    // A trust anchor that trust.ts checks whatever the backend: CommonCaSettings.fingerprint.
    anchor: true,
    inherit: "with-server",
    description:
      "step-ca root fingerprint (sha256 of the root certificate, as step ca bootstrap takes it)",
    check: (v) =>
      /^[0-9a-fA-F]{64}$/.test(v) ? undefined : "is not a SHA-256 fingerprint (64 hex digits)",
  },
  {
    field: "renewAuth",
    flag: "ca-renew-auth",
    kind: "choice",
    valueName: "mode",
    choices: STEP_CA_RENEW_AUTH,
    // A TLS-terminating proxy usually fronts every CA on the server: one setting serves all three.
    inherit: "always",
    description:
      "how step-ca renewals authenticate: the current certificate over mTLS (a fresh key), or a JWT signed by its key (the key is kept; through a TLS-terminating proxy and after expiry); default: mTLS, the JWT when mTLS is refused or the certificate expired",
  },
  {
    field: "provisioner",
    flag: "ca-provisioner",
    kind: "string",
    valueName: "name",
    inherit: sameEnrolment,
    description:
      "step-ca provisioner node-join mints its tokens for (JWK with the password file, or X5C)",
  },
  {
    field: "passwordFile",
    flag: "ca-password-file",
    kind: "path",
    valueName: "file",
    secret: true,
    inherit: sameEnrolment,
    description: "file holding the step-ca provisioner password (mode 0600)",
  },
  {
    field: "tokenFile",
    flag: "ca-token-file",
    kind: "path",
    valueName: "file",
    secret: true,
    inherit: sameEnrolment,
    description: "file of step-ca one-time tokens, one per certificate and line (mode 0600)",
  },
  {
    field: "x5cCertFile",
    flag: "ca-x5c-cert",
    kind: "path",
    valueName: "pem",
    inherit: sameEnrolment,
    description: "step-ca X5C enrolment: the node's machine certificate, then its intermediates",
  },
  {
    field: "x5cKeyFile",
    flag: "ca-x5c-key",
    kind: "path",
    valueName: "pem",
    secret: true,
    inherit: sameEnrolment,
    description: "step-ca X5C enrolment: the machine certificate's private key (mode 0600)",
  },
]);

export function parseStepCaSettings(common: CommonCaSettings, value: CaValues): StepCaSettings {
  const s: StepCaSettings = { ...common, type: "step-ca" };
  for (const f of [
    "provisioner",
    "passwordFile",
    "tokenFile",
    "x5cCertFile",
    "x5cKeyFile",
  ] as const) {
    const v = textValue(value, f);
    if (v) s[f] = v;
  }
  // The table checked it against STEP_CA_RENEW_AUTH.
  // The option is declared once, with CFSSL's (cfssl-settings.ts): every CA takes every option.
  const identity = textValue(value, "identity");
  if (identity === "file" || identity === "tpm") s.identity = identity;
  const renewAuth = textValue(value, "renewAuth");
  if (renewAuth) s.renewAuth = renewAuth as StepCaRenewAuth;
  return s;
}
