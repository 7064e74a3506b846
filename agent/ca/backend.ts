// The one interface every CA speaks. A backend lives in its own file or folder and registers
// itself in ca/index.ts (with what is known of it without reaching it: its secrets, the SANs it
// asks for); commands only see this interface.
import type { Clock } from "../common/clock.js";
import type { CaDescriptor } from "../pki/cas.js";
import type { CertTemplate, ProfileKind } from "../pki/certs.js";
import type { CertInfo } from "../pki/x509.js";
import type { ProxyConfig } from "./proxy.js";
import type { CaSecrets } from "./secrets.js";

export interface SignRequest {
  kind: string;
  profile: ProfileKind;
  csrPem: string;
  template: CertTemplate;
}

/** What a run will ask a CA for, known before the first CSR is built. */
export type PlannedRequest = Pick<SignRequest, "kind" | "template">;

export interface RenewRequest extends SignRequest {
  /** The certificate being renewed and its key (for CAs that authenticate renewals with it). */
  currentCertPem: string;
  currentKeyPem: string;
  /** The assessment found it expired (engine/assess.ts): only some paths can renew it then. */
  expired: boolean;
}

/** A renewal's answer. */
export interface Renewed {
  /** The PEM chain, leaf first. */
  chainPem: string;
  /**
   * The CA certified the current key, not the CSR's (step-ca's token renewal: /1.0/renew takes no
   * CSR): the installed key stays.
   */
  keptCurrentKey: boolean;
  /** How it was renewed when that is worth a word in renew's output. */
  note?: string;
}

/**
 * RFC 5280 5.3.1 CRLReason, spelled as CFSSL's revoke endpoint and step-ca's /1.0/revoke take
 * them (cfssl ocsp.ReasonStringToCode; step-ca api/revoke.go reasonCode). leave uses
 * cessationOfOperation; a key that left the host uses keyCompromise.
 */
export type RevokeReason =
  "unspecified" | "keyCompromise" | "affiliationChanged" | "superseded" | "cessationOfOperation";

/** A certificate node-join issued on this node, to be revoked at its CA (`leave --revoke`). */
export interface RevokeRequest {
  kind: string;
  /** The certificate to revoke (leaf only). */
  certPem: string;
  /**
   * Its private key: step-ca authenticates a revocation by the certificate itself over mTLS.
   * Absent: the key is no longer on the node (a CA that needs it refuses, CaRefusedError).
   */
  keyPem?: string;
  reason: RevokeReason;
}

export interface CaBackend {
  /**
   * "CA kubernetes (cfssl http://ca:8888)": used in every message about this CA; with several
   * URLs it names the server that last answered (before any answer, the first one to be asked).
   */
  readonly description: string;
  /** The URL of the server that last answered, once one has; remembered for the next run. */
  answered?(): string | undefined;
  /**
   * The HTTP Date of the last answer from this CA (ca/http.ts HttpResponse.date), once one came:
   * the CA's time, to tell whether the host's clock is set (engine/clock.ts). Never used to accept
   * a certificate.
   */
  lastDate?(): Date | undefined;
  /** Fetches the CA certificate(s) and authenticates them against the pin or CA file. */
  fetchCaBundle(): Promise<CertInfo[]>;
  /**
   * After fetchCaBundle: the CA certificate that signs the certificates this CA issues now, the
   * issuer of a fresh leaf (renew.onSignerChange tells the retiring signer's leaves by it), where
   * that is not the first certificate fetchCaBundle returned (step-ca: the intermediate under its
   * roots). Absent, or undefined: that first certificate (CFSSL: the one /info sends, its signer).
   */
  currentSigner?(): CertInfo | undefined;
  /**
   * After fetchCaBundle: the CA certificates the server sent that the operator's anchors (pins,
   * fingerprint, CA file; `node-join trust add`) neither name nor vouch for. Never trusted nor
   * written to a CA file or kubeconfig; `trust list` shows them as offered.
   */
  offered?(): CertInfo[];
  /**
   * Checks, before any CSR reaches any CA, that every planned request can be authorized (step-ca:
   * a one-time token or the provisioner password for each), so a failure spends no token. Optional.
   */
  prepare?(reqs: PlannedRequest[]): Promise<void>;
  /** Signs a CSR; resolves to the PEM chain, leaf first. */
  sign(req: SignRequest): Promise<string>;
  /**
   * Renews with the current certificate where the CA has such a path (step-ca); else absent. The
   * engine asks only for a certificate its assessment found renewable; this talks to the CA and
   * rejects with RenewalRefusedError where enrolling again is the way out (refused after expiry).
   */
  renew?(req: RenewRequest): Promise<Renewed>;
  /**
   * Why `req` cannot be enrolled in place of a renewal given up on for `why` (no enrolment secret
   * for it), as the error to report; undefined: sign can enrol it. Absent: sign decides.
   */
  cannotEnrol?(req: PlannedRequest, why: string): Error | undefined;
  /**
   * Revokes a certificate this CA issued, where the CA has a revocation path (CFSSL with a
   * certificate database, step-ca); absent: the CA cannot revoke, the caller reports the serials.
   * Resolves once the CA confirmed; rejects with a typed error (refused: CaRefusedError,
   * unreachable: TransientError after the run's deadline) naming the certificate's serial.
   */
  revoke?(req: RevokeRequest): Promise<void>;
  /**
   * revoke needs the certificate's private key (step-ca: mTLS with the certificate itself), so a
   * superseded certificate whose revocation failed keeps its key on the node for the retry.
   */
  readonly revokesWithKey?: boolean;
}

/**
 * What every CA's settings hold, whatever its backend (flags, environment, config file; never a
 * secret's value): where it is and how it is trusted. Each backend extends it with its own
 * (cfssl-settings.ts, stepca-settings.ts); CaSettings (ca/index.ts) is their union, told apart by
 * `type`.
 */
export interface CommonCaSettings {
  /** The backend: a key of the registry in ca/index.ts. */
  type: string;
  /**
   * The servers of this CA (at least one), each a full instance of the same CA: asked in this
   * order, starting with the one that last answered.
   */
  urls: string[];
  label?: string;
  /** kubeadm-style SPKI pins, sha256:<hex>. */
  certHashes: string[];
  caFile?: string;
  /** Trust bundle for the CA server's TLS certificate when it is not issued by the signing CA. */
  tlsCaFile?: string;
  /**
   * sha256 hex of a root certificate's DER, lower-case (step's --fingerprint): a trust anchor that
   * trust.ts checks for every backend, set by the backends that declare it (stepca-settings.ts).
   */
  fingerprint?: string;
}

export interface BackendContext<S extends CommonCaSettings = CommonCaSettings> {
  ca: CaDescriptor;
  settings: S;
  unsafeSkipCaVerification: boolean;
  /**
   * The CA certificates the node holds that a pin names: a CA certificate the server sends that
   * one of them signed is trusted too (a new CA cross-signed by the pinned one).
   */
  pinned?: CertInfo[];
  /** The CA's secrets, read and checked before the run's first request (readCaSecrets). */
  secrets: CaSecrets;
  env: NodeJS.ProcessEnv;
  /** The proxies between the node and its CAs, with their credentials; undefined: none. */
  proxy?: ProxyConfig;
  clock: Clock;
  /** The URL that answered last time (the state file); ignored unless one of settings.urls. */
  preferredUrl?: string;
  /** Absolute deadline (clock.now()) for every retry of this run. */
  deadline: number;
  log: (line: string) => void;
}

export type BackendFactory<S extends CommonCaSettings = CommonCaSettings> = (
  ctx: BackendContext<S>,
) => CaBackend;
