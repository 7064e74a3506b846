// Output shapes shared by commands: kubeadm's date and residual-time formats, plain tables.
import type { PlannedFile } from "../store/transaction.js";

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** kubeadm's "Jan 02, 2006 15:04 MST", in UTC. */
export function kubeadmDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${MONTHS[d.getUTCMonth()]} ${p(d.getUTCDate())}, ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())} UTC`;
}

/** apimachinery's ShortHumanDuration, as kubeadm prints residual time. */
export function shortHumanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h`;
  if (hours < 24 * 365) return `${Math.floor(hours / 24)}d`;
  return `${Math.floor(hours / 24 / 365)}y`;
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
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
