// The registry of CA backends: adding a CA type means its own files (the backend, its settings)
// and one entry here; config/ and cli/ walk the registry for its options, secrets and settings.
import { UsageError } from "../common/errors.js";
import type { CertTemplate } from "../pki/certs.js";
import type { RequestedSans } from "../pki/verify.js";
import type { BackendContext, BackendFactory, CaBackend, CommonCaSettings } from "./backend.js";
import { CFSSL_SECRETS, cfsslRenewalPath, createCfsslBackend, probeCfssl } from "./cfssl.js";
import { CFSSL_OPTIONS, parseCfsslSettings } from "./cfssl-settings.js";
import type { CaOptionSpec, CaValues } from "./options.js";
import type { Probed, ProbeRequest } from "./probe.js";
import {
  envWithoutSecrets,
  PROXY_CREDENTIALS_ENV,
  readCaSecrets,
  settingFile,
  type CaSecrets,
  type ReadSecretsOptions,
  type SecretKind,
} from "./secrets.js";
import {
  checkX5cSettings,
  createStepCaBackend,
  probeStepCa,
  STEPCA_SECRETS,
  stepCaRenewalPath,
  stepCaRequestedSans,
  withX5cCredential,
} from "./stepca/index.js";
import { parseStepCaSettings, STEPCA_OPTIONS } from "./stepca-settings.js";
import { CA_NAMES, CAS, type CaDescriptor } from "../pki/cas.js";
import type { SecretFreeEnv } from "../common/builtins.js";
import { caSettingName, checkTrustFiles } from "./trust.js";

/** A CA backend: how to reach it, and what its settings are. F: the fields of its options. */
export interface BackendType<S extends CommonCaSettings, F extends string = string> {
  create: BackendFactory<S>;
  /**
   * Its own options below cas.<ca> (cfssl-settings.ts): every CA takes them, whatever its type, as
   * the type may come from the config file after the flags were parsed.
   */
  options: readonly CaOptionSpec<F>[];
  /**
   * Its settings from the common ones and this CA's values (inheritance from the kubernetes CA
   * applied); the table checked each value's kind, choices and format.
   */
  parse: (common: CommonCaSettings, value: CaValues) => S;
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
  renewalPath: (settings: S, o: RenewalPathOptions) => string;
  /**
   * Checks how the settings combine (step-ca: X5C enrolment excludes the other enrolment secrets)
   * before any file they name is read.
   */
  checkSettings?: (ca: CaDescriptor, settings: S, env: NodeJS.ProcessEnv) => void;
  /**
   * Checks what the secrets alone do not tell (step-ca: the machine certificate of X5C enrolment
   * against its key and the clock), before the run contacts any CA; returns the secrets with it.
   */
  checkInputs?: (ca: CaDescriptor, settings: S, secrets: CaSecrets, o: CaInputOptions) => CaSecrets;
  /**
   * What a server of this type serves to anyone, fetched unverified and without a secret
   * (`node-join probe`): its CA certificates, and its TLS chain over https.
   */
  probe?: (p: ProbeRequest) => Promise<Probed>;
}

/** Declares a registry entry, keeping its settings type and option fields as types. */
const backend = <S extends CommonCaSettings, const F extends string>(
  t: BackendType<S, F>,
): BackendType<S, F> => t;

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

export const BACKENDS = {
  cfssl: backend({
    create: createCfsslBackend,
    options: CFSSL_OPTIONS,
    parse: parseCfsslSettings,
    secrets: CFSSL_SECRETS,
    renewalPath: cfsslRenewalPath,
    probe: probeCfssl,
  }),
  "step-ca": backend({
    create: createStepCaBackend,
    options: STEPCA_OPTIONS,
    parse: parseStepCaSettings,
    secrets: STEPCA_SECRETS,
    requestedSans: stepCaRequestedSans,
    renewalPath: stepCaRenewalPath,
    checkSettings: checkX5cSettings,
    checkInputs: withX5cCredential,
    probe: probeStepCa,
  }),
};

/** The CA types, as --ca-type and the config key cas.<ca>.type take them. */
export type CaType = keyof typeof BACKENDS;
export const CA_TYPES = Object.keys(BACKENDS) as CaType[];

/** The settings of one CA: its backend's, told apart by `type`. */
export type CaSettings = {
  [T in CaType]: (typeof BACKENDS)[T] extends BackendType<infer S, string> ? S : never;
}[CaType];

/** The fields of every backend's own options (the config keys below cas.<ca>). */
export type BackendField = {
  [T in CaType]: (typeof BACKENDS)[T]["options"][number]["field"];
}[CaType];

/**
 * An entry seen through the common settings type. Sound where it is used: each entry is called
 * only with settings its own parse made, which `settings.type` names.
 */
type AnyBackendType = BackendType<CaSettings>;

function backendType(type: string): AnyBackendType | undefined {
  return (BACKENDS as unknown as Record<string, AnyBackendType | undefined>)[type];
}

function knownType(ca: CaDescriptor, type: string): AnyBackendType {
  const t = backendType(type);
  if (!t) {
    throw new UsageError(
      `CA ${ca.display}: unknown CA type "${type}" (known: ${Object.keys(BACKENDS).join(", ")})`,
    );
  }
  return t;
}

export function createBackend(ctx: BackendContext<CaSettings>): CaBackend {
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

/** Probes a CA server of this type (BackendType.probe); a type without a probe is a usage error. */
export function probeCa(type: string, p: ProbeRequest): Promise<Probed> {
  const probe = backendType(type)?.probe;
  if (!probe)
    throw new UsageError(
      `--ca-type ${type}: no probe for this CA type (known: ${CA_TYPES.filter((t) => backendType(t)?.probe).join(", ")})`,
    );
  return probe(p);
}

/** How `renew` will authenticate to this CA; undefined for an unknown type (status shows none). */
export function renewalPathFor(settings: CaSettings, o: RenewalPathOptions): string | undefined {
  return backendType(settings.type)?.renewalPath(settings, o);
}

export function requestedSansFor(type: string, template: CertTemplate): RequestedSans[] {
  return backendType(type)?.requestedSans?.(template) ?? [template.sans];
}

/**
 * Every backend's options in registry order, checked once: two backends declaring the same field
 * or flag would share a setting without agreeing on what it means.
 */
export function backendOptions(): CaOptionSpec<BackendField>[] {
  return distinctOptions(
    Object.values(BACKENDS).map((t): readonly CaOptionSpec<BackendField>[] => t.options),
  );
}

/** The options of several backends as one list; a field or flag declared twice is refused. */
export function distinctOptions<F extends string>(
  lists: readonly (readonly CaOptionSpec<F>[])[],
): CaOptionSpec<F>[] {
  const all = lists.flat();
  for (const [i, o] of all.entries()) {
    const twin = all.findIndex((p) => p.field === o.field || p.flag === o.flag);
    if (twin !== i) throw new Error(`CA option ${o.field} (--${o.flag}) is declared twice`);
  }
  return all;
}

/** The options of a CA type (none for an unknown one). */
export function optionsOf(type: string): readonly CaOptionSpec[] {
  return backendType(type)?.options ?? [];
}

/**
 * The files of this CA's secrets that renew.authKey: drop deletes after join (SecretKind.dropped:
 * CFSSL's auth key), as its settings name them.
 */
export function droppableSecretFiles(settings: CaSettings): string[] {
  return secretFiles(settings)
    .filter((f) => f.kind.dropped)
    .map((f) => f.file);
}

/**
 * Every file this CA's settings name for a secret of its type (SecretKind: CFSSL's auth key,
 * step-ca's token, password and X5C key files), with its kind: what leave removes with the node.
 */
export function secretFiles(settings: CaSettings): { file: string; kind: SecretKind }[] {
  return (backendType(settings.type)?.secrets ?? []).flatMap((kind) => {
    const file = settingFile(settings, kind.setting);
    return file ? [{ file, kind }] : [];
  });
}

/** Parses one CA's settings with the backend its type names (the table checked the type). */
export function parseCaSettings(
  ca: CaDescriptor,
  common: CommonCaSettings,
  value: CaValues,
): CaSettings {
  return knownType(ca, common.type).parse(common, value);
}

/** Every backend's secrets that may come from an environment variable (SecretKind.envName). */
const envSecrets = (): SecretKind[] =>
  Object.values(BACKENDS)
    .flatMap((t): readonly SecretKind[] => t.secrets)
    .filter((k) => k.envName);

/**
 * The names behind a CA's prefix (secretEnvName) of the variables any backend reads a secret from:
 * CFSSL's AUTH_KEY, step-ca's TOKEN and PASSWORD, ...
 */
export function secretEnvSuffixes(): string[] {
  const k8s = CAS.kubernetes;
  return [...new Set(envSecrets().map((k) => k.envName!(k8s).slice(k8s.envPrefix.length)))];
}

/**
 * Every environment variable node-join reads a secret from: each CA's (NODE_JOIN_ETCD_CA_TOKEN,
 * …) and the proxy's credentials.
 */
export function secretEnvNames(): string[] {
  const ca = CA_NAMES.flatMap((n) => envSecrets().map((k) => k.envName!(CAS[n])));
  return [...new Set(ca), PROXY_CREDENTIALS_ENV];
}

/**
 * `env` for another program (a hook): without the variables a secret is read from, nor any named
 * like one, and with the proxy URLs stripped of their user:password (secrets.ts).
 */
export function withoutSecrets(env: NodeJS.ProcessEnv): SecretFreeEnv {
  return envWithoutSecrets(env, secretEnvNames(), secretEnvSuffixes());
}
