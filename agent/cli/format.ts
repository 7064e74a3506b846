// Output shapes shared by commands: the one date format and kubeadm's residual time (in
// common/time.ts, also used below the CLI), and plain tables.
export { isoDate, shortHumanDuration } from "../common/time.js";

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
