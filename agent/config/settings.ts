// The effective settings of a run, after flags, environment, config file and defaults were merged
// (config.ts) and validated. Secrets are never part of them: only the paths of the files that hold them.
import type { CaName, ControlPlaneSettings, Role } from "../pki/certs.js";
import type { KeyAlgorithm } from "../pki/keys.js";

export interface CaSettings {
  type: string;
  url: string;
  label?: string;
  /** kubeadm-style SPKI pins, sha256:<hex>. */
  certHashes: string[];
  caFile?: string;
  /** Trust bundle for the CA server's TLS certificate when it is not issued by the signing CA. */
  tlsCaFile?: string;
  authKeyFile?: string;
  /** step-ca: sha256 hex of the root certificate's DER (step's --fingerprint), lower-case. */
  fingerprint?: string;
  /** step-ca: JWK provisioner that node-join mints tokens for (with passwordFile). */
  provisioner?: string;
  passwordFile?: string;
  /** step-ca: file of one-time tokens minted elsewhere, one per certificate. */
  tokenFile?: string;
  clientProfile?: string;
  servingProfile?: string;
  peerProfile?: string;
}

export interface Settings {
  role: Role;
  apiServer: string;
  nodeName?: string;
  ips: string[];
  dnsNames: string[];
  interface?: string;
  keyAlgorithm: KeyAlgorithm;
  timeoutMs: number;
  unsafeSkipCaVerification: boolean;
  cas: Record<CaName, CaSettings>;
  controlPlane?: ControlPlaneConfig;
  renew: { beforeMs?: number; reuseKey: boolean };
  hooks: { postRenew?: string[][] };
  timer: { enabled: boolean };
  metrics: { textfile: string };
}

export interface ControlPlaneConfig extends Partial<ControlPlaneSettings> {
  serviceAccountKeyFile: string;
  serviceAccountPublicKeyFile: string;
}
