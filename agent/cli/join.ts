// `node-join join`: issue every certificate the role needs, verify, install as one transaction,
// then install the renewal timer.
import type { Command } from "commander";
import { loadSettings, type GlobalOptions } from "../config/load.js";
import { ALL_OPTIONS } from "../config/options.js";
import { checkJoinSettings, type Settings } from "../config/settings.js";
import { renderConfig, type RawValues } from "../config/sources.js";
import { due, kept } from "../engine/assess.js";
import { casOf } from "../engine/issue.js";
import { withMetrics } from "../engine/report.js";
import type { Runtime } from "../engine/runtime.js";
import { policyFor } from "../engine/policy.js";
import { run, type RunOutcome } from "../engine/run.js";
import { clearJoinPending, recordJoinFailure } from "../ops/join-retry.js";
import {
  chooseScheduler,
  defaultExec,
  detectTimerEnv,
  timerStatus,
  type TimerInstallResult,
} from "../ops/timer.js";
import type { StandardProxyEnv, StandardProxyKey, StandardProxyValue } from "../ca/proxy.js";
import { trustConfigured } from "../ca/trust.js";
import { CAS, type CaName } from "../pki/cas.js";
import { kindsFor } from "../pki/certs.js";
import type { Role } from "../pki/roles.js";
import { certPin, type CertInfo } from "../pki/x509.js";
import type { PlannedFile } from "../store/transaction.js";
import { inspect } from "../store/fsio.js";
import { checkWritable, joinDirs } from "../store/writable.js";
import { checkEnvironmentFile } from "../store/strict-modes.js";
import { addGlobal, examples, type Cli } from "./context.js";
import { formatPlannedFiles, formatSpentTokens } from "./format.js";
import { addOptionFlags } from "./flags.js";
import { isoDate } from "./format.js";

// Each line fits an 80-column terminal with the help's indent.
const HELP = examples([
  "# a worker against CFSSL, the CA pinned by its key's hash, as kubeadm pins it",
  "node-join join --api-server https://10.0.0.10:6443 \\",
  "  --ca-url http://ca.example:8888 --ca-cert-hash sha256:<hex> \\",
  "  --ca-auth-key-file /etc/node-join/ca-auth.key",
  "# a pre-flight: settings, secrets, CA and pin; what it would request and write",
  "node-join join --dry-run --api-server https://10.0.0.10:6443 \\",
  "  --ca-url http://ca.example:8888 --ca-cert-hash sha256:<hex>",
  "# a control plane against step-ca (the etcd and front-proxy CAs on it too)",
  "node-join join --role control-plane \\",
  "  --control-plane-endpoint k8s.example:6443 \\",
  "  --ca-type step-ca --ca-url https://ca.example:9000 --ca-fingerprint <hex> \\",
  "  --ca-provisioner nodes --ca-password-file /etc/node-join/pw",
]);

interface IssuedSummary {
  kind: string;
  reason: string;
  serial?: string;
  notAfter?: string;
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ips: string[];
  ca: CaName;
}

export interface JoinResult {
  ok: true;
  command: "join";
  dryRun: boolean;
  role: Role;
  nodeName: string;
  issued: IssuedSummary[];
  kept: string[];
  changedFiles: string[];
  /** `changedFiles` with what happens to each: created or replaced, and its mode. */
  files: PlannedFile[];
  backup?: string;
  message: string;
  timer?: TimerInstallResult;
  /** Dry run: a real join would install the renewal timer. */
  wouldInstallTimer?: true;
  /** renew.authKey: drop: the CFSSL auth key files this join deleted (dry run: would delete). */
  droppedAuthKeys?: string[];
  /** identity: tpm: the auth key files whose key is now in the TPM, deleted (dry run: would be). */
  authKeysIntoTpm?: string[];
  /** identity: tpm (step-ca): the token files whose one-time tokens this join spent, deleted. */
  spentTokenFiles?: string[];
}

export interface JoinOptions {
  settings: Settings;
  /** The merged values, persisted as the node's config. */
  values: RawValues;
  force: boolean;
  dryRun: boolean;
  /** The proxy settings taken from https_proxy, http_proxy or no_proxy (config/load.ts). */
  fromStandardEnv?: StandardProxyEnv;
}

/**
 * The values join persists: what was given, the node name it resolved, and for every CA it trusted
 * without an anchor (--unsafe-skip-ca-verification) the pins of the certificates it accepted, so
 * that no later run trusts whatever answers (trust on first use, as ssh's known_hosts).
 */
export function persistedValues(
  o: JoinOptions,
  nodeName: string,
  trusted: ReadonlyMap<CaName, CertInfo[]>,
  log: (line: string) => void,
): RawValues {
  const values = new Map(o.values);
  values.set("nodeName", nodeName);
  // The timer's renew has no login shell's environment: the proxy this join went through is kept
  // (without credentials: a secret is never persisted) so that renewals take the same way.
  for (const [key, v] of Object.entries(o.fromStandardEnv ?? {}) as [
    StandardProxyKey,
    StandardProxyValue<string | string[]>,
  ][]) {
    const shown = Array.isArray(v.value) ? v.value.join(",") : v.value;
    const creds = v.hadCredentials
      ? ` (not its credentials: give renewals --proxy-credentials-file, config proxy.credentialsFile)`
      : "";
    log(
      o.dryRun
        ? `dry run: would keep ${key} ${shown} from ${v.variable} in the config for renewals${creds}`
        : `kept ${key} ${shown} from ${v.variable} in the config: renewals use it${creds}`,
    );
  }
  for (const [ca, anchors] of trusted) {
    if (trustConfigured(o.settings.cas[ca])) continue;
    const pins = [...new Set(anchors.map(certPin))];
    values.set(`cas.${ca}.certHashes`, pins);
    log(
      o.dryRun
        ? `dry run: would pin CA ${CAS[ca].display} (${pins.join(", ")})`
        : `pinned CA ${CAS[ca].display} (${pins.join(", ")}): later runs trust only this CA certificate`,
    );
  }
  return values;
}

/** `timerInPlace`: the renewal timer is installed and sound, so a dry run does not list it. */
export function joinResult(s: Settings, r: RunOutcome, timerInPlace = false): JoinResult {
  const toIssue = due(r.assessments);
  const issued: IssuedSummary[] = toIssue.map((a) => {
    const leaf = r.issued.get(a.kind.name)?.leaf;
    return {
      kind: a.kind.name,
      reason: a.reason!,
      ...(leaf ? { serial: leaf.serial, notAfter: isoDate(leaf.notAfter) } : {}),
      commonName: a.template.commonName,
      organizations: a.template.organizations,
      dnsNames: a.template.sans.dnsNames,
      ips: a.template.sans.ips,
      ca: a.kind.ca,
    };
  });
  const what = `${s.role} node ${r.nodeName}`;
  const message = r.dryRun
    ? r.changedFiles.length === 0
      ? `dry run: nothing to do: ${what} already has valid certificates matching its config`
      : `dry run: would request ${toIssue.length} certificate(s) and write ${r.changedFiles.length} file(s) of ${what}`
    : r.changedFiles.length === 0
      ? `nothing to do: ${what} already has valid certificates matching its config`
      : `joined ${what}: issued ${r.issued.size} certificate(s), wrote ${r.changedFiles.length} file(s)`;
  return {
    ok: true,
    command: "join",
    dryRun: r.dryRun,
    role: s.role,
    nodeName: r.nodeName,
    issued,
    kept: kept(r.assessments).map((a) => a.kind.name),
    changedFiles: r.changedFiles,
    files: r.files,
    ...(r.backup ? { backup: r.backup } : {}),
    message,
    ...(r.timer ? { timer: r.timer } : {}),
    ...(r.dryRun && s.timer.enabled && !timerInPlace ? { wouldInstallTimer: true as const } : {}),
    ...(r.droppedAuthKeys ? { droppedAuthKeys: r.droppedAuthKeys } : {}),
    ...(r.authKeysIntoTpm ? { authKeysIntoTpm: r.authKeysIntoTpm } : {}),
    ...(r.spentTokenFiles ? { spentTokenFiles: r.spentTokenFiles } : {}),
  };
}

export async function runJoin(o: JoinOptions, rt: Runtime): Promise<JoinResult> {
  checkJoinSettings(o.settings, casOf(kindsFor(o.settings.role)));
  const policy = policyFor("join", o.settings, rt.layout, {
    dryRun: o.dryRun,
    force: o.force,
    config: (id, trusted) => persistedValues(o, id.nodeName, trusted, rt.log),
  });
  const outcome = await run(o.settings, policy, rt);
  const timerInPlace =
    o.dryRun &&
    timerStatus(detectTimerEnv(rt.layout), new Date(rt.clock.now())).problem === undefined;
  return joinResult(o.settings, outcome, timerInPlace);
}

/**
 * Runs the join; a node not joined before whose join fails leaves the retry unit when a later
 * attempt can fix what stopped it (ops/join-retry.ts), and a join that joins removes it. Only where
 * systemd is (or will be) the init: without it a failed join stays the caller's to retry, as with
 * --no-retry-unit (retryUnit.enabled: false), for operators whose own orchestration retries.
 */
async function joinRetried(o: JoinOptions, rt: Runtime, attempt: () => Promise<JoinResult>) {
  const env = detectTimerEnv(rt.layout);
  // Joined before: a join committed here (its state file). Not the config file: an operator (or
  // cloud-init's write_files) may put config.yaml in place before the first join.
  const joinedBefore = inspect(rt.layout.stateFile).kind !== "missing";
  const retries =
    !o.dryRun && o.settings.retryUnit.enabled && chooseScheduler(env, "auto") === "systemd";
  let r: JoinResult;
  try {
    r = await attempt();
  } catch (err) {
    if (retries && !joinedBefore) {
      const now = new Date(rt.clock.now());
      const exec = defaultExec(rt.layout);
      const config = renderConfig(o.values, rt.layout.root);
      const line = recordJoinFailure({ env, exec, config, err, now });
      if (line) rt.log(line);
    }
    throw err;
  }
  if (!o.dryRun) {
    const removed = clearJoinPending(env);
    if (removed.length) rt.log(`joined: removed the join retry (${removed.join(", ")})`);
  }
  return r;
}

export function formatJoin(r: JoinResult): string {
  const line = (i: IssuedSummary): string => {
    const sans = [...i.dnsNames, ...i.ips];
    const subject = `CN=${i.commonName}${i.organizations.length ? ` O=${i.organizations.join(",")}` : ""}`;
    const why = i.reason === "missing" ? "new" : i.reason;
    return `  ${r.dryRun ? "would request" : "issued"} ${i.kind}: ${subject}${sans.length ? ` SANs=${sans.join(",")}` : ""} (${why})\n`;
  };
  const dry = r.dryRun
    ? formatPlannedFiles(r.files) +
      (r.wouldInstallTimer ? "  would install the renewal timer (node-join timer install)\n" : "")
    : "";
  const dropped = (r.droppedAuthKeys ?? [])
    .map((f) =>
      r.dryRun
        ? `  would drop the CFSSL auth key file ${f} (renew.authKey: drop)\n`
        : `dropped the CFSSL auth key file ${f} (renew.authKey: drop): a renewal that must sign needs it back, or a new join\n`,
    )
    .join("");
  const intoTpm = (r.authKeysIntoTpm ?? [])
    .map((f) =>
      r.dryRun
        ? `  would move the CFSSL auth key of ${f} into the TPM and delete the file (identity: tpm)\n`
        : `moved the CFSSL auth key of ${f} into the TPM and deleted the file (identity: tpm): tokens are computed in the TPM\n`,
    )
    .join("");
  const spent = formatSpentTokens(r.spentTokenFiles);
  // The timer is mentioned when this join installed or replaced it, not on every repeated join.
  return `${r.message}\n${r.issued.map(line).join("")}${dry}${r.timer?.changed ? `${r.timer.message}\n` : ""}${intoTpm}${spent}${dropped}`;
}

export function registerJoin(program: Command, cli: Cli): void {
  const cmd = addGlobal(
    program
      .command("join")
      .description("issue and install this node's certificates and kubeconfigs"),
  );
  addOptionFlags(
    cmd,
    cli.withJoinFlags ? ALL_OPTIONS.filter((o) => (o.command ?? "join") === "join") : [],
  );
  cmd
    .option("--force", "re-issue every certificate even if the installed ones are valid")
    .option(
      "--dry-run",
      "check settings, secret files, write access and every CA (reachable, pin), then print what would be requested and written; change nothing",
    )
    .option("--no-timer", "do not install the renewal timer (config timer.enabled: false)")
    .option(
      "--no-retry-unit",
      "a first join that fails for a reason a later attempt can fix leaves no node-join-join.service: retrying is the caller's (config retryUnit.enabled: false)",
    )
    .option(
      "--check-flags",
      "only parse and check the flags and config as join would, then exit: no file, CA or clock touched",
    )
    .addHelpText("after", HELP)
    .action(async (opts: GlobalOptions & Record<string, unknown>) => {
      // commander sets timer=true by default for --no-timer; only an explicit --no-timer counts
      // (the same for --no-retry-unit).
      const { timer, retryUnit, checkFlags, ...rest } = opts;
      const loaded = loadSettings(rest, cli.io.env);
      // pxe-hook.sh --mode firstboot writes the flags into a unit that runs at first boot: it asks
      // here, while the installer can still say which flag is wrong.
      if (checkFlags) {
        const value = { ok: true, command: "join", checkFlags: true };
        cli.setResult({ json: Boolean(opts.json), value, text: "join: the flags are valid\n" });
        return;
      }
      checkEnvironmentFile(loaded.layout.environmentFile);
      if (timer === false) {
        loaded.settings.timer.enabled = false;
        loaded.values.set("timer.enabled", false);
      }
      if (retryUnit === false) {
        loaded.settings.retryUnit.enabled = false;
        loaded.values.set("retryUnit.enabled", false);
      }
      // A dry run fails where the real run could not write (store/writable.ts).
      if (opts.dryRun) checkWritable(joinDirs(loaded.layout));
      const rt = cli.runtime(loaded.layout.root);
      const o = {
        settings: loaded.settings,
        values: loaded.values,
        force: Boolean(opts.force),
        dryRun: Boolean(opts.dryRun),
        fromStandardEnv: loaded.fromStandardEnv,
      };
      const r = await joinRetried(o, rt, () =>
        withMetrics(
          "join",
          loaded.settings,
          rt,
          () => runJoin(o, rt),
          (j) => ({ nodeName: j.nodeName }),
        ),
      );
      cli.setResult({ json: Boolean(opts.json), value: r, text: formatJoin(r) });
    });
}
