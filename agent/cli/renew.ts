// `node-join renew`: renew every certificate that is due, broken, or no longer matches the node,
// as one transaction; then, and only then, run the post-renew hooks. What the timer runs.
import { join } from "node:path";
import type { Command } from "commander";
import { CA_NAMES, CAS } from "../pki/cas.js";
import { UsageError } from "../common/errors.js";
import { loadSettings, type GlobalOptions } from "../config/load.js";
import type { Settings } from "../config/settings.js";
import { due, nextDue } from "../engine/assess.js";
import { withMetrics } from "../engine/report.js";
import { policyFor } from "../engine/policy.js";
import { run, type RunOutcome } from "../engine/run.js";
import type { Runtime } from "../engine/runtime.js";
import { optionByKey } from "../config/options.js";
import type { PlannedFile } from "../store/transaction.js";
import { checkEnvironmentFile } from "../store/strict-modes.js";
import { addGlobal, examples, type Cli } from "./context.js";
import { addOptionFlags } from "./flags.js";
import { formatPlannedFiles, formatSpentTokens, isoDate } from "./format.js";

const HELP = examples([
  "node-join renew                 # what the timer runs: what is due, then hooks",
  "node-join renew --dry-run       # what is due and why, CAs checked, no change",
  "node-join renew --before 720h   # renew everything with less than 30 days left",
]);

export { KUBELET_FILES_KEPT } from "../engine/policy.js";

export interface RenewOptions {
  settings: Settings;
  force: boolean;
  dryRun: boolean;
  /** The config file was found: renew needs what join persisted. */
  configured: boolean;
}

export interface RenewedCert {
  kind: string;
  reason: string;
  /** How the CA renewed it, when that is worth a word (step-ca token renewal: the key is kept). */
  note?: string;
  expired: boolean;
  serial?: string;
  notAfter?: string;
}

export interface RenewResult {
  ok: true;
  command: "renew";
  dryRun: boolean;
  nodeName: string;
  renewed: RenewedCert[];
  /** When the next certificate falls due, and which one. */
  nextDeadline?: string;
  nextDeadlineKind?: string;
  hooks: { argv: string[]; exitCode: number }[];
  changedFiles: string[];
  /** `changedFiles` with what happens to each: created or replaced, and its mode. */
  files: PlannedFile[];
  /** The CA bundles among `changedFiles`: a CA's certificates changed (a rotation). */
  caBundles: string[];
  /** identity: tpm (step-ca): token files whose one-time tokens this run spent, deleted. */
  spentTokenFiles?: string[];
  message: string;
}

/**
 * renew's result. `caBundleFiles`: the paths of the role's CA bundles, to tell them among the
 * changed files.
 */
export function renewResult(r: RunOutcome, caBundleFiles: readonly string[] = []): RenewResult {
  const toRenew = due(r.assessments);
  const renewed = toRenew.map((a): RenewedCert => {
    const issued = r.issued.get(a.kind.name);
    const leaf = issued?.leaf;
    return {
      kind: a.kind.name,
      reason: a.reason!,
      ...(issued?.note ? { note: issued.note } : {}),
      expired: a.expired,
      ...(leaf ? { serial: leaf.serial, notAfter: isoDate(leaf.notAfter) } : {}),
    };
  });
  const base = {
    ok: true as const,
    command: "renew" as const,
    dryRun: r.dryRun,
    nodeName: r.nodeName,
    hooks: r.hooks,
    changedFiles: r.changedFiles,
    files: r.files,
    caBundles: r.changedFiles.filter((f) => caBundleFiles.includes(f)),
    ...(r.spentTokenFiles ? { spentTokenFiles: r.spentTokenFiles } : {}),
  };
  if (renewed.length === 0) {
    const next = nextDue(r.assessments);
    const at = next && isoDate(next.deadline);
    return {
      ...base,
      renewed,
      ...(next ? { nextDeadline: at!, nextDeadlineKind: next.kind } : {}),
      message: `nothing to renew; next renewal: ${next ? `${next.kind} at ${at}` : "none"}`,
    };
  }
  if (r.dryRun)
    return {
      ...base,
      renewed,
      message: `dry run: would renew ${renewed.map((x) => x.kind).join(", ")}`,
    };
  const expired = renewed.filter((x) => x.expired).map((x) => x.kind);
  const note = expired.length ? ` (${expired.join(", ")} had expired)` : "";
  return {
    ...base,
    renewed,
    message: `renewed ${renewed.length}: ${renewed.map((x) => x.kind).join(", ")}${note}`,
  };
}

export async function runRenew(o: RenewOptions, rt: Runtime): Promise<RenewResult> {
  if (!o.configured) {
    throw new UsageError(
      `no config at ${rt.layout.configFile}: run node-join join first (renew needs the settings join persisted)`,
    );
  }
  const policy = policyFor("renew", o.settings, rt.layout, { dryRun: o.dryRun, force: o.force });
  const bundles = CA_NAMES.map((n) => join(rt.layout.pkiDir, CAS[n].file));
  return renewResult(await run(o.settings, policy, rt), bundles);
}

export function formatRenew(r: RenewResult): string {
  const line = (x: RenewedCert): string =>
    `  ${r.dryRun ? "would renew" : "renewed"} ${x.kind}: ${x.reason}${x.note ? ` (${x.note})` : ""}${x.serial ? ` -> serial ${x.serial}, expires ${x.notAfter}` : ""}\n`;
  // A rewritten bundle changes what the node trusts (a CA rotation): said, not only in --json.
  const bundles = r.caBundles
    .map((f) => `  ${r.dryRun ? "would rewrite" : "rewrote"} CA bundle ${f}\n`)
    .join("");
  return `${r.message}\n${r.renewed.map(line).join("")}${bundles}${formatSpentTokens(r.spentTokenFiles)}${r.dryRun ? formatPlannedFiles(r.files) : ""}`;
}

export function registerRenew(program: Command, cli: Cli): void {
  const cmd = addGlobal(
    program
      .command("renew")
      .description("renew every certificate that is due, broken or no longer matches the node"),
  )
    .option(
      "--before <duration>",
      "renew when less than this remains (default: the kubelet's rule, 70-90% of the lifetime)",
    )
    .option("--force", "renew every certificate now")
    .option(
      "--dry-run",
      "check secret files and the CAs of what is due (reachable, pin), then print what would be renewed and written; change nothing",
    );
  // join's --timeout, from the same entry of the settings table: the CA deadline of both commands.
  addOptionFlags(cmd, [optionByKey("timeout")!, optionByKey("clock.tolerance")!])
    .addHelpText("after", HELP)
    .action(async (opts: GlobalOptions & Record<string, unknown>) => {
      const loaded = loadSettings(opts, cli.io.env);
      checkEnvironmentFile(loaded.layout.environmentFile);
      const rt = cli.runtime(loaded.layout.root);
      const o = {
        settings: loaded.settings,
        force: Boolean(opts.force),
        dryRun: Boolean(opts.dryRun),
        configured: loaded.configFile !== undefined,
      };
      const r = await withMetrics(
        "renew",
        loaded.settings,
        rt,
        () => runRenew(o, rt),
        (x) => ({ nodeName: x.nodeName, renewed: x.renewed.length }),
      );
      cli.setResult({ json: Boolean(opts.json), value: r, text: formatRenew(r) });
    });
}
