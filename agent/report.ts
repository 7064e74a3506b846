// What is installed for each kind of a role, with its renewal deadline: shared by status, renew and
// the metrics textfile.
import { hostPath } from "./config.js";
import { dueness } from "./deadline.js";
import { readIfExists } from "./fsio.js";
import { previousRuns, renderMetrics, writeMetrics, type RunMetric } from "./metrics.js";
import type { Layout } from "./paths.js";
import type { Settings } from "./settings.js";
import { readState } from "./state.js";
import { kindsFor } from "./certs.js";
import { readInstalled } from "./store.js";

/** Refreshes the textfile after a run; never fails the run (a broken exporter directory is logged). */
export function refreshMetrics(s: Settings, l: Layout, nodeName: string | undefined, run: RunMetric, log: (line: string) => void): void {
  try {
    const name = nodeName ?? s.nodeName ?? "";
    const certs = kindsFor(s.role).map((kind) => {
      const r = readInstalled(kind, l);
      const file = hostPath(r.ok ? r.value.file : r.file, l.root);
      if (!r.ok) return { kind: kind.name, file };
      const leaf = r.value.chain[0]!;
      const deadline = dueness(leaf, { nodeName: name, ...(s.renew.beforeMs !== undefined ? { beforeMs: s.renew.beforeMs } : {}) }, run.time).deadline;
      return { kind: kind.name, file, notAfter: leaf.notAfter, deadline };
    });
    const state = readState(l);
    const previous = readIfExists(s.metrics.textfile)?.toString("utf8");
    const text = renderMetrics(certs, run, state.lastRenewal ? new Date(state.lastRenewal) : undefined, previousRuns(previous, run.command));
    writeMetrics(s.metrics.textfile, text);
  } catch (err) {
    log(`warning: could not refresh the metrics textfile ${s.metrics.textfile}: ${(err as Error).message}`);
  }
}

