// Enrolment with a certificate the node already holds: step-ca's X5C provisioner (step-ca 0.19
// authority/provisioner/x5c.go). A machine certificate from the node's provisioning (PXE time, a
// previous install) signs a one-time token whose x5c header (RFC 7515 4.1.6) carries it and its
// intermediates; the CA verifies that chain against the provisioner's roots, for client
// authentication, and the token's signature with the certificate's key. No password or token file
// is on the node: what enrols it is its own key, and only as long as that certificate is valid.
import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { CaRefusedError, UsageError } from "../../common/errors.js";
import type { CaDescriptor } from "../../pki/cas.js";
import { spkiDer } from "../../pki/keys.js";
import {
  buildChain,
  issuedBy,
  parseCert,
  splitPemCertificates,
  type CertInfo,
} from "../../pki/x509.js";
import { inspect } from "../../store/fsio.js";
import { readExistingFile } from "../../store/safe-read.js";
import type { StepCaSettings } from "../stepca-settings.js";
import { JoseError } from "../jose.js";
import {
  secretEnvName,
  type CaSecrets,
  type ReadSecretsOptions,
  type SecretKind,
  type X5cCredential,
} from "../secrets.js";
import { caSettingName, missingFileError } from "../trust.js";
import { jwsAlgorithm, type X5cTokenRequest } from "../x5c.js";

const CERT_WHAT = "step-ca X5C machine certificate file";
const KEY_WHAT = "step-ca X5C machine key file";
/** x509 anyExtendedKeyUsage: Go's crypto/x509 Verify accepts it for every usage asked for. */
const ANY_EKU = "2.5.29.37.0";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

/**
 * The machine key: a secret file (mode 0600, root's), never an environment variable (a key file
 * is what the machine's provisioning leaves). Only an enrolment needs it.
 */
export const X5C_KEY_SECRET: SecretKind = {
  setting: "x5cKeyFile",
  what: KEY_WHAT,
  flag: "ca-x5c-key",
  enrolmentOnly: true,
  check: (v) => {
    try {
      createPrivateKey(v);
      return undefined;
    } catch {
      return "is not an unencrypted PEM private key";
    }
  },
};

const certName = (ca: CaDescriptor) => caSettingName(ca, "ca-x5c-cert", "x5cCertFile");
const keyName = (ca: CaDescriptor) => caSettingName(ca, "ca-x5c-key", "x5cKeyFile");

/**
 * The X5C settings of a CA as a whole: both files or neither, and no other enrolment secret beside
 * them (each would claim the node's certificates, and a password or token file on the node is what
 * X5C enrolment does without). Exit 2 naming both settings; checked on renewals too.
 */
export function checkX5cSettings(
  ca: CaDescriptor,
  settings: StepCaSettings,
  env: NodeJS.ProcessEnv,
): void {
  const { x5cCertFile: certFile, x5cKeyFile: keyFile } = settings;
  const p = ca.flagPrefix;
  // identity: tpm makes the machine key in the TPM (engine/tpm-x5c.ts): a key file beside it
  // would be the copyable identity it replaces.
  if (settings.identity === "tpm" && (certFile || keyFile))
    throw new UsageError(
      `CA ${ca.display}: --${p}ca-identity tpm (the X5C machine key made in the TPM) and --${p}${certFile ? "ca-x5c-cert" : "ca-x5c-key"} are mutually exclusive: the machine certificate of the TPM's key is obtained with a one-time token (--${p}ca-token-file)`,
    );
  if (!certFile && !keyFile) return;
  for (const [s, flag, variable, what] of [
    ["passwordFile", "ca-password-file", "PASSWORD", "the provisioner password"],
    ["tokenFile", "ca-token-file", "TOKEN", "one-time tokens"],
  ] as const) {
    // The variable wins over the file when both are set (secrets.ts readSecret).
    const name = secretEnvName(ca, variable);
    const source = env[name] ? name : settings[s] ? `--${p}${flag} ${settings[s]}` : undefined;
    if (source)
      throw new UsageError(
        `CA ${ca.display}: --${p}ca-x5c-cert/--${p}ca-x5c-key (X5C enrolment) and ${source} are mutually exclusive: give the machine certificate or ${what}, not both`,
      );
  }
  if (!certFile || !keyFile) {
    const [has, lacks] = certFile ? [certName(ca), keyName(ca)] : [keyName(ca), certName(ca)];
    throw new UsageError(
      `CA ${ca.display}: ${has} needs ${lacks} too: X5C enrolment takes the machine certificate and its key`,
    );
  }
}

/**
 * Checks the machine certificate a CA's settings name, before the run's first request: the
 * certificate parses, the key is its key, it is valid now and fit for client authentication, and
 * the file's further certificates are its chain (each issuing the one before). Undefined without
 * X5C settings, or on a renewal without the key (the installed certificate renews). Exit 2, one
 * line naming the file and its setting.
 */
export function readX5cCredential(
  ca: CaDescriptor,
  settings: StepCaSettings,
  secrets: CaSecrets,
  now: number,
): X5cCredential | undefined {
  const { x5cCertFile: certFile, x5cKeyFile: keyFile } = settings;
  const keySecret = secrets.x5cKeyFile;
  if (!certFile || !keyFile || !keySecret) return undefined;
  if (inspect(certFile).kind === "missing")
    throw missingFileError(ca, CERT_WHAT, certFile, certName(ca));
  const at = `${CERT_WHAT} ${certFile} (${certName(ca)})`;
  const text = readExistingFile(certFile, { follow: true, what: CERT_WHAT }).toString("utf8");
  let chain: CertInfo[];
  try {
    chain = splitPemCertificates(text, "it").map(parseCert);
  } catch (err) {
    throw new UsageError(`CA ${ca.display}: ${at}: ${(err as Error).message}`);
  }
  // X5C_KEY_SECRET.check parsed it already.
  const key = createPrivateKey(keySecret.value);
  const problem = chainProblem(chain, key, now);
  if (problem) {
    const fault = problem.key ? `${KEY_WHAT} ${keyFile} (${keyName(ca)})` : at;
    throw new UsageError(`CA ${ca.display}: ${fault}: ${problem.why}`);
  }
  return { chain, key, certFile };
}

const describeCert = (c: CertInfo, i: number): string =>
  `${i === 0 ? "the machine certificate" : `certificate ${i + 1}`} (CN "${c.commonName}")`;

/**
 * Why step-ca's X5C provisioner would refuse this chain and key as far as the node can tell
 * without the provisioner's roots (x5c.go authorizeToken: Go's x509 Verify for clientAuth at the
 * CA's time, then the token's signature by the leaf's key); `key` when the key is at fault.
 */
export function chainProblem(
  chain: CertInfo[],
  key: KeyObject,
  now: number,
): { why: string; key?: true } | undefined {
  const leaf = chain[0]!;
  if (!spkiDer(createPublicKey(key)).equals(leaf.spki))
    return {
      why: `it is not the key of the machine certificate (CN "${leaf.commonName}")`,
      key: true,
    };
  try {
    jwsAlgorithm(key);
  } catch (err) {
    if (err instanceof JoseError) return { why: err.message, key: true };
    throw err;
  }
  for (const [i, c] of chain.entries()) {
    if (c.notAfter.getTime() <= now)
      return {
        why: `${describeCert(c, i)} expired on ${c.notAfter.toISOString()}: X5C enrolment needs a currently valid one`,
      };
    if (c.notBefore.getTime() > now)
      return { why: `${describeCert(c, i)} is not valid before ${c.notBefore.toISOString()}` };
    const next = chain[i + 1];
    if (next && !(next.isCa && issuedBy(c, next)))
      return {
        why: `${describeCert(next, i + 1)} did not issue ${describeCert(c, i)}: give the machine certificate first, then each intermediate in order`,
      };
  }
  // Go's Verify with KeyUsages [clientAuth]: a certificate without the extension serves any usage.
  const ekus = leaf.node.keyUsage ?? [];
  if (ekus.length > 0 && !ekus.includes(CLIENT_AUTH) && !ekus.includes(ANY_EKU))
    return {
      why: `the machine certificate (CN "${leaf.commonName}") is not for client authentication (its extended key usage lacks clientAuth), which step-ca's X5C provisioner requires`,
    };
  return undefined;
}

/**
 * The pre-flight of a CA's X5C inputs (ca/index.ts readCaInputs), after checkX5cSettings and the
 * secrets (the machine key among them) were read: an unusable machine certificate
 * stops a join, while a renewal (the installed certificate authenticates it) keeps the reason for
 * a fallback to enrolment to report.
 */
export function withX5cCredential(
  ca: CaDescriptor,
  settings: StepCaSettings,
  secrets: CaSecrets,
  o: ReadSecretsOptions & { now: number },
): CaSecrets {
  let x5c: X5cCredential | undefined;
  try {
    x5c = readX5cCredential(ca, settings, secrets, o.now);
  } catch (err) {
    if (!(o.renewal && err instanceof UsageError)) throw err;
    // The renewal's message names the CA already.
    return { ...secrets, x5cUnusable: err.message.replace(`CA ${ca.display}: `, "") };
  }
  return x5c ? { ...secrets, x5c } : secrets;
}

// ---- the CA side ------------------------------------------------------------------------------

export interface X5cProvisioner {
  name: string;
  /** Its roots as /provisioners publishes them; undefined when it does not. */
  roots?: CertInfo[];
}

/** The X5C provisioners in a /provisioners page ("roots": the PEM text, base64 as Go's []byte). */
export function x5cProvisionersOf(list: unknown): X5cProvisioner[] {
  const out: X5cProvisioner[] = [];
  for (const p of Array.isArray(list) ? (list as unknown[]) : []) {
    if (typeof p !== "object" || p === null) continue;
    const { type, name, roots } = p as Record<string, unknown>;
    if (type !== "X5C" || typeof name !== "string") continue;
    let parsed: CertInfo[] | undefined;
    try {
      parsed =
        typeof roots === "string"
          ? splitPemCertificates(Buffer.from(roots, "base64").toString("utf8")).map(parseCert)
          : undefined;
    } catch {
      parsed = undefined;
    }
    out.push({ name, ...(parsed ? { roots: parsed } : {}) });
  }
  return out;
}

/**
 * Refuses, before a CSR is sent, a machine certificate that the provisioner's published roots did
 * not issue: the CA would answer a bare 401. Exit 4: this CA does not enrol this machine.
 */
export function checkX5cRoots(cred: X5cCredential, p: X5cProvisioner, description: string): void {
  if (!p.roots) return;
  const [leaf, ...intermediates] = cred.chain as [CertInfo, ...CertInfo[]];
  if (buildChain(leaf, intermediates, p.roots)) return;
  throw new CaRefusedError(
    `${description}: the machine certificate in ${cred.certFile} (CN "${leaf.commonName}", issuer "${leaf.issuerCommonName}") does not chain to the roots of X5C provisioner "${p.name}" (${p.roots.map((r) => `"${r.commonName}"`).join(", ")}); no CSR was sent`,
  );
}

/**
 * The token's audience: step-ca gives each X5C provisioner its sign URLs with the fragment
 * x5c/<name> (x5c.go Init, Audiences.WithFragment) and finds the provisioner by that fragment
 * (provisioner/collection.go LoadByToken).
 */
export function x5cAudience(base: string, provisioner: string): string {
  return `${base}/1.0/sign#x5c/${provisioner}`;
}

/**
 * What x5c.go authorizeToken and AuthorizeSign check: iss = the provisioner, aud its sign URL, sub
 * = the CN asked for (commonNameValidator), sans = the names asked for (defaultSANsValidator),
 * iat/nbf/exp around now, a one-time jti; signed by the machine key with the chain in x5c.
 */
export function x5cSignToken(
  cred: X5cCredential,
  provisioner: string,
  subject: { sub: string; sans: string[] },
  base: string,
  now: number,
  lifetimeS: number,
): X5cTokenRequest {
  return {
    chainDer: cred.chain.map((c) => c.der),
    key: cred.key,
    issuer: provisioner,
    subject: subject.sub,
    audience: [x5cAudience(base, provisioner)],
    now,
    lifetimeS,
    extra: { sans: subject.sans },
  };
}

/** What a 401 to an x5c token usually means (step-ca sends no reason). */
export function x5cRefusedMessage(cred: X5cCredential, provisioner: string, base: string): string {
  return (
    `the x5c token signed with the machine certificate in ${cred.certFile} was refused by X5C provisioner "${provisioner}" (HTTP 401; step-ca logs the reason but does not send it). Usual causes: ` +
    "the certificate does not chain to the provisioner's roots, lacks the digitalSignature key usage, or is not for client authentication; " +
    `clock skew between node and CA; the CA does not know itself as ${base}; the CSR's CN or SANs differ from the token's sub and sans`
  );
}
