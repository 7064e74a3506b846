// Output shapes shared by commands: the one date format and kubeadm's residual time (in
// common/time.ts, also used below the CLI), and plain tables.
export { isoDate, shortHumanDuration } from "../common/time.js";
import type { PlannedFile } from "../store/transaction.js";

/** Columns padded to their widest cell, `gap` spaces apart (kubectl's tabwriter uses 3). */
export function table(header: string[], rows: string[][], gap = 3): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + gap)))
      .join("")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n") + "\n";
}

/**
 * A run's files as a dry run lists them, one per line and aligned: "would create  0600 <path>",
 * "would replace link <path> -> <target>".
 */
export function formatPlannedFiles(files: readonly PlannedFile[]): string {
  return files
    .map((f) => {
      const action = `would ${f.action}`.padEnd("would replace".length);
      const what =
        f.symlink === undefined ? `${f.mode} ${f.path}` : `link ${f.path} -> ${f.symlink}`;
      return `  ${action} ${what}\n`;
    })
    .join("");
}

/** identity: tpm (step-ca): the token files a run deleted once their one-time tokens were spent. */
export function formatSpentTokens(files: readonly string[] | undefined): string {
  return (files ?? [])
    .map(
      (f) =>
        `deleted ${f}: its one-time tokens are spent (identity: tpm enrols with the TPM's key)\n`,
    )
    .join("");
}
