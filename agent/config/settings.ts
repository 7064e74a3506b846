// The effective settings of a run: flags, environment and config file merged (sources.ts), then
// completed with the defaults, which are applied here and nowhere else. Secrets are never part of
// them: only the paths of the files that hold them.
import { join } from "node:path";
import type { CommonCaSettings } from "../ca/backend.js";
import { backendOptions, optionsOf, parseCaSettings, type CaSettings } from "../ca/index.js";
import {
  effectiveValue,
  textValue,
  type CaOptionSpec,
  type CaValue,
  type CaValues,
} from "../ca/options.js";
import type { ProxySettings } from "../ca/proxy.js";
import { parseDuration } from "../common/duration.js";
import { UsageError } from "../common/errors.js";
import { CA_NAMES, CAS, type CaName } from "../pki/cas.js";
import type { KeyAlgorithm } from "../pki/keys.js";
import type { Role } from "../pki/roles.js";
import { optionByKey, type OptionKey, type ValueOf } from "./options.js";
import { valueOf, type RawValues } from "./sources.js";

export interface ControlPlaneConfig {
  /** Unset: the first node IP that discovery finds. */
  advertiseAddress?: string;
  bindPort: number;
  /** controlPlaneEndpoint as host:port; unset only when no API server URL is known either. */
  endpoint?: string;
  serviceCidr: string;
  dnsDomain: string;
  apiServerCertSans: string[];
  etcdServerCertSans: string[];
  etcdPeerCertSans: string[];
  serviceAccountKeyFile: string;
  serviceAccountPublicKeyFile: string;
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
  /** The host's clock differs from a CA's HTTP Date by more: not set (engine/clock.ts). */
  clockToleranceMs: number;
  unsafeSkipCaVerification: boolean;
  cas: Record<CaName, CaSettings>;
  /** The proxy between the node and its CAs (proxy.ts); credentials only by their file's path. */
  proxy: ProxySettings;
  controlPlane?: ControlPlaneConfig;
  /** beforeFrom: the setting that gave beforeMs, as messages name it (config/load.ts). */
  renew: {
    beforeMs?: number;
    beforeFrom?: string;
    reuseKey: boolean;
    /**
     * CFSSL auth key files after a successful join: kept for renewals, or dropped (deleted; a
     * renewal that must sign reports that it needs them back).
     */
    authKey: "keep" | "drop";
    /** A certificate still signed by a CA's retiring signer: renewed at its deadline, or early. */
    onSignerChange: "deadline" | "early";
    signerChangeWindowMs: number;
  };
  hooks: { postRenew?: string[][]; preLeave?: string[][] };
  timer: { enabled: boolean };
  /** A first join that failed for a reason a later attempt can fix leaves the retry unit. */
  retryUnit: { enabled: boolean };
  metrics: { textfile: string };
  /** The TPM that holds the node's identity where a CA's settings keep it there (agent/tpm). */
  tpm: { tcti: string };
}

/**
 * Every default, by option key. Paths are host paths; under --root they are taken below the root.
 */
export const DEFAULTS = {
  role: "worker",
  keyAlgorithm: "ecdsa-p256",
  timeout: "5m",
  "clock.tolerance": "5m",
  unsafeSkipCaVerification: false,
  "cas.kubernetes.type": "cfssl",
  "controlPlane.bindPort": 6443,
  "controlPlane.serviceCidr": "10.96.0.0/12",
  "controlPlane.dnsDomain": "cluster.local",
  "controlPlane.serviceAccountKeyFile": "/etc/node-join/sa.key",
  "controlPlane.serviceAccountPublicKeyFile": "/etc/node-join/sa.pub",
  "renew.reuseKey": false,
  "renew.authKey": "keep",
  "renew.onSignerChange": "deadline",
  "renew.signerChangeWindow": "7d",
  "timer.enabled": true,
  "retryUnit.enabled": true,
  "metrics.textfile": "/var/lib/node_exporter/textfile_collector/node_join.prom",
  "tpm.tcti": "device:/dev/tpmrm0",
} as const satisfies { [K in OptionKey]?: ValueOf<K> };
type Defaulted = keyof typeof DEFAULTS;

/** Every backend's options by field: how a front-proxy or etcd CA inherits each. */
const BACKEND_OPTIONS = new Map<string, CaOptionSpec>(backendOptions().map((o) => [o.field, o]));

/** Builds complete, typed settings from merged values; `root` prefixes default paths. */
export function toSettings(values: RawValues, root: string): Settings {
  const get = <K extends OptionKey>(k: K): ValueOf<K> | undefined => valueOf(values, k);
  const or = <K extends Defaulted>(k: K): ValueOf<K> => {
    const v = get(k);
    if (v !== undefined) return v;
    const d = DEFAULTS[k] as ValueOf<K>;
    return optionByKey(k)?.path && typeof d === "string" ? (join(root, d) as ValueOf<K>) : d;
  };
  const list = (k: OptionKey & `${string}s`): string[] => (get(k) as string[] | undefined) ?? [];

  // A CA's own values by field: the options of a CA (options.ts caOptions) hold text or lists.
  const ownValues =
    (ca: CaName): CaValues =>
    (field) =>
      values.get(`cas.${ca}.${field}` as OptionKey) as CaValue | undefined;
  const caSettings = (ca: CaName): CaSettings => {
    const own = ownValues(ca);
    const kubernetes = ca === "kubernetes" ? undefined : ownValues("kubernetes");
    // The front-proxy and etcd CAs share the kubernetes CA's server unless given their own URL,
    // and then its type and TLS trust; pins, CA files and labels stay per CA. Each backend's
    // options say what else they inherit (ca/options.ts).
    const sharesServer = kubernetes !== undefined && own("url") === undefined;
    const shared = (f: "type" | "url" | "tlsCaFile") =>
      own(f) ?? (sharesServer ? kubernetes(f) : undefined);
    const value: CaValues = (field) => {
      const spec = BACKEND_OPTIONS.get(field);
      return spec ? effectiveValue(spec, own, kubernetes) : own(field);
    };
    const common: CommonCaSettings = {
      type: (shared("type") as string | undefined) ?? or("cas.kubernetes.type"),
      urls: (shared("url") as string[] | undefined) ?? [],
      certHashes: get(`cas.${ca}.certHashes`) ?? [],
    };
    const label = get(`cas.${ca}.label`) ?? CAS[ca].defaultLabel;
    if (label) common.label = label;
    const caFile = get(`cas.${ca}.caFile`);
    if (caFile) common.caFile = caFile;
    const tlsCaFile = shared("tlsCaFile") as string | undefined;
    if (tlsCaFile) common.tlsCaFile = tlsCaFile;
    // A trust anchor trust.ts checks whatever the backend, declared by the one that takes it.
    const fingerprint = textValue(value, "fingerprint");
    if (fingerprint) common.fingerprint = fingerprint.toLowerCase();
    return parseCaSettings(CAS[ca], common, value);
  };

  // The table checks both against their choices (ROLES, KEY_ALGORITHMS) before a value gets here.
  const role = or("role") as Role;
  const settings: Settings = {
    role,
    apiServer: get("apiServer") ?? "",
    ips: list("ips"),
    dnsNames: list("dnsNames"),
    keyAlgorithm: or("keyAlgorithm") as KeyAlgorithm,
    timeoutMs: parseDuration(or("timeout"))!,
    clockToleranceMs: parseDuration(or("clock.tolerance"))!,
    unsafeSkipCaVerification: or("unsafeSkipCaVerification"),
    cas: Object.fromEntries(CA_NAMES.map((ca) => [ca, caSettings(ca)])) as Record<
      CaName,
      CaSettings
    >,
    proxy: { noProxy: get("proxy.noProxy") ?? [] },
    renew: {
      reuseKey: or("renew.reuseKey"),
      authKey: or("renew.authKey") as "keep" | "drop",
      onSignerChange: or("renew.onSignerChange") as "deadline" | "early",
      signerChangeWindowMs: parseDuration(or("renew.signerChangeWindow"))!,
    },
    hooks: {},
    timer: { enabled: or("timer.enabled") },
    retryUnit: { enabled: or("retryUnit.enabled") },
    metrics: { textfile: or("metrics.textfile") },
    tpm: { tcti: or("tpm.tcti") },
  };
  for (const k of ["https", "http", "credentialsFile"] as const) {
    const v = get(`proxy.${k}`);
    if (v) settings.proxy[k] = v;
  }
  const before = get("renew.before");
  if (before) settings.renew.beforeMs = parseDuration(before)!;
  const postRenew = get("hooks.postRenew");
  if (postRenew) settings.hooks.postRenew = postRenew;
  const preLeave = get("hooks.preLeave");
  if (preLeave) settings.hooks.preLeave = preLeave;
  const nodeName = get("nodeName");
  if (nodeName) settings.nodeName = nodeName;
  const iface = get("interface");
  if (iface) settings.interface = iface;
  if (role === "control-plane") {
    const endpoint = get("controlPlane.endpoint");
    // kubeadm points admin.conf, super-admin.conf and kubelet.conf at
    // https://<controlPlaneEndpoint>,
    // and a single control plane's endpoint is the API server URL's host:port.
    if (endpoint && !settings.apiServer) settings.apiServer = `https://${endpoint}`;
    const derived = settings.apiServer ? hostPort(settings.apiServer) : undefined;
    settings.controlPlane = {
      bindPort: or("controlPlane.bindPort"),
      serviceCidr: or("controlPlane.serviceCidr"),
      dnsDomain: or("controlPlane.dnsDomain"),
      apiServerCertSans: get("controlPlane.apiServerCertSans") ?? [],
      etcdServerCertSans: get("controlPlane.etcdServerCertSans") ?? [],
      etcdPeerCertSans: get("controlPlane.etcdPeerCertSans") ?? [],
      serviceAccountKeyFile: or("controlPlane.serviceAccountKeyFile"),
      serviceAccountPublicKeyFile: or("controlPlane.serviceAccountPublicKeyFile"),
    };
    const adv = get("controlPlane.advertiseAddress");
    if (adv) settings.controlPlane.advertiseAddress = adv;
    const ep = endpoint ?? derived;
    if (ep) settings.controlPlane.endpoint = ep;
  }
  return settings;
}

function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || "443"}`;
}

/** The checks a join needs beyond per-key types: required settings and trust for every CA used. */
export function checkJoinSettings(s: Settings, casUsed: CaName[]): void {
  if (!s.apiServer) {
    throw new UsageError(
      s.role === "control-plane"
        ? "--api-server or --control-plane-endpoint (config key apiServer or controlPlane.endpoint) is required"
        : "--api-server (config key apiServer) is required",
    );
  }
  for (const ca of casUsed) {
    const c = s.cas[ca];
    const { flagPrefix, title } = CAS[ca];
    if (c.urls.length === 0)
      throw new UsageError(`--${flagPrefix}ca-url (config key cas.${ca}.url) is required`);
    if (c.certHashes.length === 0 && !c.caFile && !c.fingerprint && !s.unsafeSkipCaVerification) {
      // The anchors of the CA's own type first (step-ca: its root fingerprint).
      const own = optionsOf(c.type).filter((o) => o.anchor);
      const flags = own.map((o) => `--${flagPrefix}${o.flag} <${o.valueName}>, `).join("");
      const keys = [...own.map((o) => o.field), "certHashes", "caFile"].map(
        (k) => `cas.${ca}.${k}`,
      );
      throw new UsageError(
        `${title}: no trust anchor: give ${flags}--${flagPrefix}ca-cert-hash sha256:<hex> or --${flagPrefix}ca-file <pem> (config key ${keys.slice(0, -1).join(", ")} or ${keys.at(-1)}) (or --unsafe-skip-ca-verification)`,
      );
    }
  }
}
