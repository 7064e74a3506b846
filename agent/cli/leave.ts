// `node-join leave`: the counterpart of join. Asks on a terminal (--yes for scripts), then
// revokes (--revoke), stops the static pods and the kubelet, and removes what node-join wrote as
// one transaction (engine/leave.ts); what it did not write, or what changed since, is kept.
import { printable } from "../common/printable.js";
import { join } from "node:path";
import type { Command } from "commander";
import { UsageError } from "../common/errors.js";
import { loadSettings, type GlobalOptions } from "../config/load.js";
import {
  KEEP_SECRETS,
  leave,
  revokeSubject,
  type Kept,
  type LeaveOutcome,
  type LeavePlan,
} from "../engine/leave.js";
import type { CaName } from "../pki/cas.js";
import type { Role } from "../pki/roles.js";
import type { Layout } from "../store/layout.js";
import { addGlobal, examples, type Cli, type Io } from "./context.js";

const HELP = examples([
  "node-join leave                 # on a terminal: lists what goes, then asks",
  "node-join leave --dry-run       # every file and unit it would remove or keep",
  "node-join leave --yes --revoke  # scripts: revoke at the CAs, then leave",
]);

export interface LeaveRevocation {
  kind: string;
  ca: CaName;
  serial: string;
  serialDecimal: string;
  /** Absent in a dry run (nothing was asked). */
  revoked?: boolean;
  error?: string;
}

export interface LeaveResult {
  ok: true;
  command: "leave";
  dryRun: boolean;
  role: Role;
  nodeName?: string;
  /** Removed (dry run: to be removed), in order. */
  removed: string[];
  /** Of those, the secret files the CA settings name, with what each is (--keep-secrets keeps). */
  secrets: { path: string; what: string }[];
  kept: Kept[];
  /** The control plane's static pod manifests moved away first. */
  manifests: { from: string; to: string }[];
  /** What stops the kubelet first (hooks.preLeave). */
  stopCommands: string[][];
  revocations: LeaveRevocation[];
  /** The backups of earlier runs go too (without --keep-backup). */
  backupsRemoved: boolean;
  /** The final copy (--keep-backup). */
  backup?: string;
  message: string;
}

export function leaveResult(
  r: LeaveOutcome,
  l: Layout,
  keepBackup: boolean,
  nodeName?: string,
): LeaveResult {
  const p = r.plan;
  const node = `${p.role} node${nodeName ? ` ${nodeName}` : ""}`;
  const n = p.remove.length;
  const message =
    n === 0
      ? "nothing to do: node-join has not joined this root, or already left it"
      : r.dryRun
        ? `dry run: would leave ${node}: remove ${n} file(s), keep ${p.keep.length}`
        : `left ${node}: removed ${n} file(s), kept ${p.keep.length}`;
  const revocations: LeaveRevocation[] = r.dryRun
    ? p.revoke.map(({ kind, ca, serial, serialDecimal }) => ({ kind, ca, serial, serialDecimal }))
    : r.revocations;
  return {
    ok: true,
    command: "leave",
    dryRun: r.dryRun,
    role: p.role,
    ...(nodeName ? { nodeName } : {}),
    removed: p.remove.map((x) => x.path),
    secrets: p.remove.filter((x) => x.secret).map(({ path, what }) => ({ path, what })),
    kept: p.keep,
    manifests: p.manifests.map((f) => ({
      from: join(l.manifestsDir, f),
      to: join(l.leftManifestsDir, f),
    })),
    stopCommands: p.stop.commands,
    revocations,
    backupsRemoved: n > 0 && p.backups && !keepBackup,
    ...(r.backup ? { backup: r.backup } : {}),
    message,
  };
}

/** After a secret file's path: what it is, and the flag that keeps it. */
function secretNote(r: LeaveResult, path: string): string {
  const secret = r.secrets.find((x) => x.path === path);
  return secret ? ` (${secret.what}; ${KEEP_SECRETS} keeps it)` : "";
}

/** One line per step, in the order leave takes them; "would …" before it acted. */
function steps(r: LeaveResult, would: boolean, backupDir: string, keepBackup: boolean): string {
  const w = (done: string, todo: string) => (would ? `would ${todo}` : done);
  const lines = [
    ...r.revocations.map((x) =>
      x.revoked === false
        ? `not revoked ${revokeSubject(x)}: ${x.error ?? ""}`
        : `${w("revoked", "revoke")} ${revokeSubject(x)}`,
    ),
    ...r.manifests.map((m) => `${w("moved", "move")} ${m.from} to ${m.to}`),
    ...r.stopCommands.map((c) => `${w("ran", "run")} ${c.join(" ")}`),
    ...(would && keepBackup && r.removed.length
      ? [`would copy every file it removes to ${backupDir}/<timestamp>/ first`]
      : []),
    ...r.removed.map((f) => `${w("removed", "remove")} ${f}${secretNote(r, f)}`),
    ...r.kept.map((k) => `${w("kept", "keep")} ${k.path} (${k.reason})`),
    ...(r.backupsRemoved
      ? [
          `${w("removed", "remove")} the earlier backups under ${backupDir} (--keep-backup keeps them)`,
        ]
      : []),
    ...(r.backup ? [`kept a copy of every removed file under ${r.backup}`] : []),
  ];
  return lines.map((line) => `  ${line}\n`).join("");
}

export function formatLeave(r: LeaveResult, l: Layout, keepBackup: boolean): string {
  return `${r.message}\n${steps(r, r.dryRun, l.backupDir, keepBackup)}`;
}

export const NEEDS_YES =
  "leave removes this node's certificates, keys and kubeconfigs: pass --yes to confirm without a terminal (--dry-run lists what it would remove)";

/** The question on a terminal, after the list of what goes; only y or yes goes on. */
async function ask(io: Io, plan: LeavePlan, listing: string): Promise<boolean> {
  io.stderr(`node-join leave will:\n${printable(listing, { lines: true })}`);
  const answer = await io.prompt!(
    `Leave the cluster and remove these ${plan.remove.length} file(s)? [y/N] `,
  );
  return /^(y|yes)$/i.test(answer.trim());
}

export function registerLeave(program: Command, cli: Cli): void {
  addGlobal(
    program
      .command("leave")
      .description(
        "undo join: remove the certificates, keys, kubeconfigs, timer and files node-join wrote",
      ),
  )
    .option("--yes", "do not ask (required when stdin or stderr is not a terminal)")
    .option(
      "--dry-run",
      "list every file and unit it would remove or keep, and what it would revoke; change nothing",
    )
    .option(
      "--revoke",
      "first revoke every still valid certificate node-join issued here at its CA (reason cessationOfOperation)",
    )
    .option("--force", "with --revoke: leave even when a certificate could not be revoked")
    .option(
      "--keep-backup",
      "copy every removed file to /var/lib/node-join/backup/<timestamp>/ first, and keep the earlier backups",
    )
    .option(
      KEEP_SECRETS,
      "keep the secret files the config names (CA auth key, token, password, X5C key); leave removes them by default",
    )
    .addHelpText("after", HELP)
    .action(async (opts: GlobalOptions & Record<string, unknown>) => {
      const io = cli.io;
      const dryRun = Boolean(opts.dryRun);
      const yes = Boolean(opts.yes);
      if (!dryRun && !yes && !(io.isTerminal?.() && io.prompt)) throw new UsageError(NEEDS_YES);
      const loaded = loadSettings(opts, io.env);
      const rt = cli.runtime(loaded.layout.root);
      const l = loaded.layout;
      const keepBackup = Boolean(opts.keepBackup);
      const nodeName = loaded.settings.nodeName;
      const r = await leave(
        {
          settings: loaded.settings,
          configured: loaded.configFile !== undefined,
          dryRun,
          revoke: Boolean(opts.revoke),
          force: Boolean(opts.force),
          keepBackup,
          keepSecrets: Boolean(opts.keepSecrets),
          confirm: (plan) => {
            if (yes) return Promise.resolve(true);
            const listing = steps(
              leaveResult({ dryRun: true, plan, revocations: [] }, l, keepBackup, nodeName),
              true,
              l.backupDir,
              keepBackup,
            );
            return ask(io, plan, listing);
          },
        },
        rt,
      );
      const result = leaveResult(r, l, keepBackup, nodeName);
      cli.setResult({
        json: Boolean(opts.json),
        value: result,
        text: formatLeave(result, l, keepBackup),
      });
    });
}
