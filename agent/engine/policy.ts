// The run's policy, named by the operation that runs it (after kubeadm's renewal Manager, one
// engine whose callers differ only in what they ask): the commands pass what the user asked
// (dry run, force, the command's own values) and never assemble the run's switches themselves.
import type { Settings } from "../config/settings.js";
import { renderConfig, type RawValues } from "../config/sources.js";
import type { Discovered } from "../ops/discover.js";
import { defaultHooks } from "../ops/hooks.js";
import type { CaName } from "../pki/cas.js";
import type { CertInfo } from "../pki/x509.js";
import { kubeletServingDropin } from "../store/kubelet-store.js";
import type { Layout } from "../store/layout.js";
import { serviceAccountFiles } from "./files.js";
import type { RunPolicy } from "./run.js";

/** Previous timestamped kubelet files kept beside the current one. */
export const KUBELET_FILES_KEPT = 3;

/** What the user asked of a run that may issue. */
interface Asked {
  dryRun: boolean;
  force: boolean;
}

/** A config file the run writes with the command's values (trust: join's, or --config). */
interface ConfigOut {
  path: string;
  values: RawValues;
}

/** What each operation is asked, besides the settings and the layout. */
export interface Asks {
  join: Asked & {
    /**
     * The values join persists as the node's config, given the node it resolved and the CA
     * certificates this run trusted (the pins an unpinned CA gets).
     */
    config: (id: Discovered, trusted: ReadonlyMap<CaName, CertInfo[]>) => RawValues;
  };
  renew: Asked;
  "trust-add": {
    /** Reach the CA servers for the bundles (--no-refresh: from the node's files). */
    refresh: boolean;
    ca: CaName;
    /** The certificates --ca-file gives, trusted beside what the node holds. */
    certs: CertInfo[];
    config: ConfigOut;
  };
  "trust-remove": {
    refresh: boolean;
    /** Renew first what chains only to the retiring CA (--renew, and there is some). */
    renewOrphans: boolean;
    config: ConfigOut;
  };
}

export type Operation = keyof Asks;

/**
 * After a renewal that issued something: the configured hooks, or the defaults, which restart the
 * host's kubelet and static pods: never on behalf of a --root tree.
 */
function renewHooks(s: Settings, l: Layout): NonNullable<RunPolicy["hooks"]> {
  if (s.hooks.postRenew) return { commands: s.hooks.postRenew };
  if (l.root === "/") return { commands: defaultHooks(s.role) };
  return {
    commands: [],
    note: "not running the default post-renew hooks under --root (set hooks.postRenew to run some)",
  };
}

/**
 * join: every CA contacted first, only expiry or a changed template re-issues, enrolment with the
 * enrolment secrets checked up front, a timer after, an unpinned CA pinned, and renew.authKey:
 * drop carried out once the node is joined.
 */
function join(s: Settings, l: Layout, a: Asks["join"]): RunPolicy {
  // Read now: a missing or mismatched pair stops the join before any CA is asked.
  const saFiles = s.role === "control-plane" ? serviceAccountFiles(s, l) : [];
  return {
    force: a.force,
    dryRun: a.dryRun,
    inventory: "systeminformation",
    contactAllCas: true,
    issue: true,
    deadlineRule: false,
    requestWith: "enrolment",
    enrolmentSecrets: "up-front",
    reuseKey: false,
    recordRenewal: false,
    installTimer: !a.dryRun && s.timer.enabled,
    trustOnFirstUse: true,
    waitForClock: true,
    // A node whose leave was interrupted is joined anew.
    afterLeave: "continue",
    dropAuthKeys: true,
    extraFiles: (id, trusted) => [
      ...saFiles,
      kubeletServingDropin(l),
      { path: l.configFile, content: renderConfig(a.config(id, trusted), l.root), mode: 0o644 },
    ],
  };
}

/**
 * renew: the deadline rule decides, every CA refreshes its bundle (only the CAs of what is due must
 * answer), the installed certificate authenticates its renewal where the CA can, hooks after.
 */
function renew(s: Settings, l: Layout, a: Asked): RunPolicy {
  return {
    force: a.force,
    dryRun: a.dryRun,
    inventory: "sysfs",
    contactAllCas: false,
    refreshCas: "server",
    issue: true,
    deadlineRule: true,
    requestWith: "installed",
    enrolmentSecrets: "if-needed",
    reuseKey: true,
    recordRenewal: true,
    keepPrevious: KUBELET_FILES_KEPT,
    hooks: renewHooks(s, l),
    installTimer: false,
    trustOnFirstUse: false,
    // The node is no longer joined: renewing would join it again.
    afterLeave: "stop",
    dropAuthKeys: false,
  };
}

/** The config a trust change rewrites, in the run's transaction. */
const configFile =
  (c: ConfigOut, l: Layout): RunPolicy["extraFiles"] =>
  () => [{ path: c.path, content: renderConfig(c.values, l.root), mode: 0o644 }];

/**
 * trust add and remove run as renew does (its hooks and kept files), never forced nor dry: the
 * bundles follow the new pins; add never issues.
 */
const POLICIES: { [O in Operation]: (s: Settings, l: Layout, a: Asks[O]) => RunPolicy } = {
  join,
  renew,
  "trust-add": (s, l, a) => ({
    ...renew(s, l, { force: false, dryRun: false }),
    issue: false,
    refreshCas: a.refresh ? "server" : "local",
    extraCas: new Map([[a.ca, a.certs]]),
    extraFiles: configFile(a.config, l),
  }),
  "trust-remove": (s, l, a) => ({
    ...renew(s, l, { force: false, dryRun: false }),
    issue: a.renewOrphans,
    // Renewing what the retiring CA signed needs its successor's signer, from the server.
    refreshCas: a.refresh || a.renewOrphans ? "server" : "local",
    extraFiles: configFile(a.config, l),
  }),
};

/** The policy of an operation, from the settings and what the user asked. */
export function policyFor<O extends Operation>(
  op: O,
  s: Settings,
  l: Layout,
  asked: Asks[O],
): RunPolicy {
  return POLICIES[op](s, l, asked);
}
