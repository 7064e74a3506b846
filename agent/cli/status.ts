// `node-join status`: kubeadm's `certs check-expiration` tables for what is on disk, plus key type,
// file and whether node-join manages it.
import type { Command } from "commander";
import { loadSettings, type GlobalOptions } from "../config/load.js";
import { collectStatus, reportRun, type StatusResult } from "../engine/report.js";
import type { Role } from "../pki/roles.js";
import { addGlobal, examples, type Cli } from "./context.js";
import { kubeadmDate, shortHumanDuration, table } from "./format.js";

const HELP = examples([
  "node-join status          # the role's certificates and CAs, with expiry",
  "node-join status --json | jq '.certificates[] | select(.problem)'",
  "node-join status --role control-plane --root /target",
]);

const yesNo = (b: boolean) => (b ? "yes" : "no");
const expiry = (e: { expires?: string; residualSeconds?: number }) =>
  e.expires
    ? [kubeadmDate(new Date(e.expires)), shortHumanDuration(e.residualSeconds! * 1000)]
    : ["", ""];
const nameCell = (e: { name: string; problem?: string }) =>
  e.problem === "missing" ? `!MISSING! ${e.name}` : e.name;

export function formatStatus(r: StatusResult): string {
  const certRows = r.certificates.map((c) => [
    nameCell(c),
    ...expiry(c),
    c.certificateAuthority,
    yesNo(c.externallyManaged),
    c.keyType ?? "",
    yesNo(c.managed),
    c.file + (c.problem && c.problem !== "missing" ? `  (${c.problem})` : ""),
  ]);
  const caRows = r.certificateAuthorities.map((c) => [
    nameCell(c),
    ...expiry(c),
    yesNo(c.externallyManaged),
    c.file,
  ]);
  return (
    table(
      [
        "CERTIFICATE",
        "EXPIRES",
        "RESIDUAL TIME",
        "CERTIFICATE AUTHORITY",
        "EXTERNALLY MANAGED",
        "KEY TYPE",
        "MANAGED",
        "FILE",
      ],
      certRows,
    ) +
    "\n" +
    table(
      ["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED", "FILE"],
      caRows,
    )
  );
}

export function registerStatus(program: Command, cli: Cli): void {
  addGlobal(
    program
      .command("status")
      .description("show certificates and CAs with expiry, like kubeadm certs check-expiration"),
  )
    // Checked like the config's role (config/options.ts), with the same message.
    .option(
      "--role <role>",
      "role whose certificates to list (default: from the config, else worker)",
    )
    .addHelpText("after", HELP)
    .action((opts: GlobalOptions & { role?: Role }) => {
      const loaded = loadSettings({ ...opts }, cli.io.env);
      const rt = cli.runtime(loaded.layout.root);
      const r = collectStatus(
        opts.role ?? loaded.settings.role,
        loaded.layout,
        new Date(rt.clock.now()),
      );
      if (loaded.configFile)
        reportRun(loaded.settings, rt, {
          command: "status",
          success: true,
          time: new Date(rt.clock.now()),
        });
      cli.setResult({ json: Boolean(opts.json), value: r, text: formatStatus(r) });
    });
}
