// The registry of CA backends: adding a CA type means one new file and one entry here.
import { UsageError } from "../common/errors.js";
import type { CertTemplate } from "../pki/certs.js";
import type { RequestedSans } from "../pki/verify.js";
import type { BackendContext, BackendFactory, CaBackend } from "./backend.js";
import { CFSSL_SECRETS, cfsslRenewalPath, createCfsslBackend } from "./cfssl.js";
import {
  readCaSecrets,
  type CaSecrets,
  type ReadSecretsOptions,
  type SecretKind,
} from "./secrets.js";
import {
  checkX5cSettings,
  createStepCaBackend,
  STEPCA_SECRETS,
  stepCaRenewalPath,
  stepCaRequestedSans,
  withX5cCredential,
} from "./stepca/index.js";
import type { CaDescriptor } from "../pki/cas.js";
import type { CaSettings } from "./backend.js";
import { caSettingName, checkTrustFiles } from "./trust.js";

export interface BackendType {
  create: BackendFactory;
  /** The secrets a CA of this type reads, checked before the run contacts any CA. */
  secrets: readonly SecretKind[];
  /**
   * The SAN sets a CA of this type is asked for when node-join requests `template` (its
   * certificate must carry exactly one of them), known without reaching it: the one source for
   * the assessment of installed certificates and the verification of answers (requestedSansFor).
   * Default: the template's own.
   */
  requestedSans?: (template: CertTemplate) => RequestedSans[];
  /** How `renew` authenticates to a CA of this type, in a few words (status). */
  renewalPath: (settings: CaSettings, o: RenewalPathOptions) => string;
  /**
   * Checks how the settings combine (step-ca: X5C enrolment excludes the other enrolment secrets)
   * before any file they name is read.
   */
  checkSettings?: (ca: CaDescriptor, settings: CaSettings, env: NodeJS.ProcessEnv) => void;
  /**
   * Checks what the secrets alone do not tell (step-ca: the machine certificate of X5C enrolment
   * against its key and the clock), before the run contacts any CA; returns the secrets with it.
   */
  checkInputs?: (
    ca: CaDescriptor,
    settings: CaSettings,
    secrets: CaSecrets,
    o: CaInputOptions,
  ) => CaSecrets;
}

export interface RenewalPathOptions {
  /** renew.authKey: drop. */
  authKeyDropped: boolean;
  /** A path as messages show it (under --root, the host's path). */
  shown: (path: string) => string;
}

export interface CaInputOptions extends ReadSecretsOptions {
  /** The run's clock (ms): certificates the node enrols with must be valid now. */
  now: number;
}

/** The CA types, as --ca-type and the config key cas.<ca>.type take them. */
export const CA_TYPES = ["cfssl", "step-ca"] as const;
export type CaType = (typeof CA_TYPES)[number];

export const BACKENDS: Record<CaType, BackendType> = {
  cfssl: { create: createCfsslBackend, secrets: CFSSL_SECRETS, renewalPath: cfsslRenewalPath },
  "step-ca": {
    create: createStepCaBackend,
    secrets: STEPCA_SECRETS,
    requestedSans: stepCaRequestedSans,
    renewalPath: stepCaRenewalPath,
    checkSettings: checkX5cSettings,
    checkInputs: withX5cCredential,
  },
};

function backendType(type: string): BackendType | undefined {
  return (BACKENDS as Record<string, BackendType | undefined>)[type];
}

function knownType(ca: CaDescriptor, type: string): BackendType {
  const t = backendType(type);
  if (!t) {
    throw new UsageError(
      `CA ${ca.display}: unknown CA type "${type}" (known: ${Object.keys(BACKENDS).join(", ")})`,
    );
  }
  return t;
}

export function createBackend(ctx: BackendContext): CaBackend {
  const type = knownType(ctx.ca, ctx.settings.type);
  // join requires one (checkJoinSettings); a hand-edited config read by renew may have lost it.
  if (ctx.settings.urls.length === 0)
    throw new UsageError(
      `CA ${ctx.ca.display}: no server URL: give ${caSettingName(ctx.ca, "ca-url", "url")}`,
    );
  return type.create(ctx);
}

/**
 * What a CA's settings name on this host, read and checked before it is contacted: the secrets its
 * type uses (secrets.ts) and its type's further checks of them, its CA file and TLS bundle
 * (trust.ts).
 */
export function readCaInputs(
  ca: CaDescriptor,
  settings: CaSettings,
  env: NodeJS.ProcessEnv,
  o: CaInputOptions,
): CaSecrets {
  const type = knownType(ca, settings.type);
  type.checkSettings?.(ca, settings, env);
  checkTrustFiles(ca, settings);
  const secrets = readCaSecrets(ca, settings, type.secrets, env, o);
  return type.checkInputs ? type.checkInputs(ca, settings, secrets, o) : secrets;
}

/** How `renew` will authenticate to this CA; undefined for an unknown type (status shows none). */
export function renewalPathFor(settings: CaSettings, o: RenewalPathOptions): string | undefined {
  return backendType(settings.type)?.renewalPath(settings, o);
}

export function requestedSansFor(type: string, template: CertTemplate): RequestedSans[] {
  return backendType(type)?.requestedSans?.(template) ?? [template.sans];
}
