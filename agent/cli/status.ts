// `node-join status`: kubeadm's `certs check-expiration` tables for what is on disk, with each
// certificate's renewal deadline and a state; exit 8 when anything needs attention (after step's
// `certificate needs-renewal`), so a cron job or a monitoring check can act on it.
import { statSync } from "node:fs";
import type { Command } from "commander";
import { parseDuration } from "../common/duration.js";
import { ExitCode, NodeJoinError, UsageError } from "../common/errors.js";
import { loadSettings, type GlobalOptions } from "../config/load.js";
import {
  clockStatus,
  collectStatus,
  judgedBy,
  unjudgedByClock,
  reportRun,
  type CaStatus,
  type CertStatus,
  type StatusResult,
} from "../engine/report.js";
import { deadlinePolicy } from "../pki/deadline.js";
import { joinPendingLine, readJoinPending } from "../ops/join-retry.js";
import { timerSummary } from "../ops/timer.js";
import type { Role } from "../pki/roles.js";
import { inspect } from "../store/fsio.js";
import { rootDir } from "../store/layout.js";
import { optionByKey } from "../config/options.js";
import { addGlobal, examples, type Cli } from "./context.js";
import { addOptionFlags } from "./flags.js";
import { shortHumanDuration, table } from "./format.js";

const HELP = examples([
  "node-join status                    # exit 8 if anything needs attention",
  "node-join status --warn-within 30d  # also flag what expires within 30 days",
  "node-join status --wide             # CA, key type, managed, file; CA pins",
]);

interface StatusOptions extends GlobalOptions {
  role?: Role;
  warnWithin?: string;
  wide?: boolean;
}

const yesNo = (b: boolean) => (b ? "yes" : "no");
// An expired one has none left ("0s"; kubeadm would print "<invalid>"): its state says expired.
const residual = (e: { residualSeconds?: number }) =>
  e.residualSeconds === undefined ? "" : shortHumanDuration(Math.max(0, e.residualSeconds) * 1000);

/** Time left until renew renews it: kubeadm's short form, "now" once due. */
function renewIn(c: CertStatus, now: Date): string {
  if (!c.renewalDeadline) return "";
  const ms = new Date(c.renewalDeadline).getTime() - now.getTime();
  return ms <= 0 ? "now" : shortHumanDuration(ms);
}

/**
 * The default form fits 80 columns for a control plane (names up to 24 characters, two-space
 * gaps); `wide` adds the CA, ownership, key type and file columns and the deadline as a date
 * (RENEW AFTER, beside RENEW IN), and for each CA certificate the trust setting that covers it, its
 * pin and subject (last: it may hold spaces). Files are the paths on this host, the root's
 * included, as messages and trust list show them.
 */
export function formatStatus(r: StatusResult, now: Date, wide = false): string {
  const certs = wide
    ? table(
        [
          "CERTIFICATE",
          "EXPIRES",
          "RESIDUAL",
          "RENEW IN",
          "RENEW AFTER",
          "CERTIFICATE AUTHORITY",
          "EXTERNALLY MANAGED",
          "KEY TYPE",
          "MANAGED",
          "STATE",
          "FILE",
        ],
        r.certificates.map((c) => [
          c.name,
          c.expires ?? "",
          residual(c),
          renewIn(c, now),
          c.renewalDeadline ?? "",
          c.certificateAuthority,
          yesNo(c.externallyManaged),
          c.keyType ?? "",
          yesNo(c.managed),
          c.state,
          c.file,
        ]),
        2,
      )
    : table(
        ["CERTIFICATE", "EXPIRES", "RESIDUAL", "RENEW IN", "STATE"],
        r.certificates.map((c) => [
          c.name,
          c.expires ?? "",
          residual(c),
          // Not by a clock that is not set.
          r.clock?.state === "not set" ? "" : renewIn(c, now),
          c.state,
        ]),
        2,
      );
  const cas = table(
    [
      "CERTIFICATE AUTHORITY",
      "EXPIRES",
      "RESIDUAL",
      ...(wide ? ["EXTERNALLY MANAGED"] : []),
      "STATE",
      ...(wide ? ["PINNED BY", "PIN", "FILE", "SUBJECT"] : []),
    ],
    r.certificateAuthorities.map((c) => [
      c.name,
      c.expires ?? "",
      residual(c),
      ...(wide ? [yesNo(c.externallyManaged)] : []),
      c.state,
      ...(wide ? [c.pinnedBy ?? "", c.pin ?? "", c.file, c.subject ?? ""] : []),
    ]),
    2,
  );
  const paths = wide ? renewalPaths(r) : "";
  return `${certs}\n${cas}\n${paths}renewal timer: ${timerSummary(r.timer, false)}\n${clockLine(r)}${attention(r)}`;
}

/** The clock, when it is not set or systemd says whether it is synchronised; else nothing. */
function clockLine(r: StatusResult): string {
  const c = r.clock;
  if (!c) return "";
  if (c.problem) return `clock: not set: ${c.problem}\n`;
  if (c.synchronised === undefined) return "";
  return `clock: ${c.synchronised ? "synchronised (systemd)" : "not synchronised yet (systemd)"}\n`;
}

/** --wide: how renew authenticates to each CA, one line each ("kubernetes CA (cfssl): …"). */
function renewalPaths(r: StatusResult): string {
  const lines = (r.renewalPaths ?? []).map((p) => `  ${p.ca} CA (${p.type}): ${p.path}\n`);
  return lines.length ? `renewal paths:\n${lines.join("")}${identityLine(r)}` : "";
}

/**
 * --wide: where the enrolment identity lives, and the secret files a copy of the disk carries
 * (the kubelet's own keys aside: they are files whatever the identity).
 */
function identityLine(r: StatusResult): string {
  const id = r.identity;
  if (!id) return "";
  const n = id.secretFiles.length;
  const files = n ? `: ${id.secretFiles.join(", ")}` : "";
  const tpm = id.tpmKeys.length ? `; TPM-wrapped keys ${id.tpmKeys.join(", ")}` : "";
  return `identity: ${id.where} (a copy of the disk carries ${n} secret file${n === 1 ? "" : "s"}${files}${tpm})\n`;
}

/** One line per entry that needs attention, naming its file, and what fixes the certificates. */
function attention(r: StatusResult): string {
  const line = (e: CertStatus | CaStatus) => `  ${e.name}: ${e.problem ?? e.state} (${e.file})\n`;
  const certs = r.certificates.filter((c) => c.state !== "ok");
  const cas = r.certificateAuthorities.filter((c) => c.state !== "ok");
  const timer = r.timer.problem ? `  renewal timer: ${r.timer.problem}\n` : "";
  // The problem names the file and its fix already.
  const envFile = r.environmentFile ? `  ${r.environmentFile.problem}\n` : "";
  const clock = r.clock?.problem
    ? `  clock: ${r.clock.problem}; nothing is judged by it: run status again once it is synchronised\n`
    : "";
  if (certs.length + cas.length === 0 && !timer && !envFile && !clock) return "";
  const hint = certs.some((c) => c.state !== "clock not set")
    ? "node-join renew repairs and renews these certificates (--force renews one not yet due)\n"
    : "";
  return `\nneeds attention:\n${clock}${[...certs, ...cas].map(line).join("")}${timer}${envFile}${hint}`;
}

/** --root must name an existing directory: a mistyped one is not an empty, all-missing node. */
function checkRoot(given: string | undefined): void {
  if (given === undefined) return;
  const root = rootDir(given);
  if (inspect(root).kind === "missing") throw new UsageError(`--root ${given}: no such directory`);
  if (!statSync(root).isDirectory()) throw new UsageError(`--root ${given}: not a directory`);
}

function warnWithin(text: string | undefined): { ms: number; text: string } | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined)
    throw new UsageError(
      `--warn-within: must be a duration such as 30d, 720h or 90s (got ${JSON.stringify(text)})`,
    );
  return { ms, text };
}

export function registerStatus(program: Command, cli: Cli): void {
  const cmd = addGlobal(
    program
      .command("status")
      .description(
        "show certificates and CAs with expiry and renewal deadline; exit 8 if any needs attention",
      ),
  )
    // Checked like the config's role (config/options.ts), with the same message.
    .option(
      "--role <role>",
      "role whose certificates to list (default: from the config); also on a root node-join never joined",
    )
    .option(
      "--warn-within <duration>",
      "also flag (exit 8) a certificate or CA that expires within this, e.g. 30d (default: off)",
    )
    .option(
      "--wide",
      "all columns: CA, externally managed, key type, managed, file; each CA's pin and subject",
    )
    .addHelpText("after", HELP);
  // renew's --clock-tolerance, from the same entry of the settings table.
  addOptionFlags(cmd, [optionByKey("clock.tolerance")!]).action(async (opts: StatusOptions) => {
    checkRoot(opts.root);
    const warn = warnWithin(opts.warnWithin);
    const loaded = loadSettings({ ...opts }, cli.io.env);
    const l = loaded.layout;
    // A join that did not finish: its last failure, not "never joined" (config.yaml may have
    // been put in place before the first join, so only a committed join's state file says joined).
    const pending = inspect(l.stateFile).kind === "missing" ? readJoinPending(l) : undefined;
    if (pending) throw new NodeJoinError(joinPendingLine(pending), ExitCode.joinPending);
    // Without a config, a state file or an explicit role there is nothing of ours to show.
    if (!loaded.configFile && !opts.role && inspect(l.stateFile).kind === "missing")
      throw new NodeJoinError(
        `${l.root === "/" ? "this node" : l.root} was never joined by node-join (no ${l.configFile}): run node-join join`,
        ExitCode.notJoined,
      );
    const rt = cli.runtime(l.root);
    const now = new Date(rt.clock.now());
    const s = loaded.settings;
    // A joined node is judged as renew judges it (engine/report.ts judgedBy). Without a config
    // (or for another --role than it says) there is nothing to compare names with.
    const judged =
      loaded.configFile && (opts.role ?? s.role) === s.role ? await judgedBy(s, l) : undefined;
    const clock = clockStatus(opts.role ?? s.role, l, now, s.clockToleranceMs);
    const collected = collectStatus(
      opts.role ?? s.role,
      l,
      {
        deadline: judged?.deadline ?? deadlinePolicy(s.nodeName ?? "", s.renew),
        ...(judged ? { assess: judged.assess } : {}),
        trust: s.cas,
        // Only for a joined node: without a config there is no CA to renew from.
        ...(loaded.configFile
          ? { renewal: { cas: s.cas, authKeyDropped: s.renew.authKey === "drop" } }
          : {}),
        ...(warn ? { warnWithin: warn } : {}),
        now,
      },
      // A joined node (its config written) renews through the timer unless told not to.
      loaded.configFile !== undefined && s.timer.enabled,
    );
    const r = unjudgedByClock(collected, clock);
    if (loaded.configFile)
      await reportRun(
        s,
        rt,
        {
          command: "status",
          success: true,
          time: now,
          // status checks the clock against its floor only (no CA asked): the offset from it
          ...(clock.state === "not set"
            ? { clockNotSet: { offsetMs: now.getTime() - Date.parse(clock.floor) } }
            : {}),
        },
        undefined,
        judged,
      );
    cli.setResult({
      json: Boolean(opts.json),
      value: r,
      text: formatStatus(r, now, Boolean(opts.wide)),
      ...(clock.state === "not set"
        ? { exitCode: ExitCode.clockNotSet }
        : r.needsAttention
          ? { exitCode: ExitCode.attention }
          : {}),
    });
  });
}
