// The metrics textfile after a join, renew or status run: expiry and renewal deadline of what is
// installed for each kind of the role, and the outcome of the run.
import { hostPath } from "../config/options.js";
import { deadlinePolicy, renewalDeadline } from "../pki/deadline.js";
import { readIfExists, writeFileAtomic } from "../store/fsio.js";
import { metricsEnabled, previousRuns, renderMetrics, type RunMetric } from "./metrics.js";
import type { Layout } from "../store/layout.js";
import type { Settings } from "../config/settings.js";
import { readState } from "../store/state.js";
import { kindsFor } from "../pki/certs.js";
import { readInstalled } from "../store/stores.js";

/**
 * Refreshes the textfile after a run; never fails the run (a broken exporter directory is logged).
 * Without the collector directory nothing is read: renew runs twice a day on every node.
 */
export function refreshMetrics(s: Settings, l: Layout, nodeName: string | undefined, run: RunMetric, log: (line: string) => void): void {
  if (!metricsEnabled(s.metrics.textfile)) return;
  try {
    const policy = deadlinePolicy(nodeName ?? s.nodeName ?? "", s.renew.beforeMs);
    const certs = kindsFor(s.role).map((kind) => {
      const r = readInstalled(kind, l);
      const file = hostPath(r.ok ? r.value.file : r.file, l.root);
      if (!r.ok) return { kind: kind.name, file };
      const leaf = r.value.chain[0]!;
      return { kind: kind.name, file, notAfter: leaf.notAfter, deadline: renewalDeadline(leaf, policy) };
    });
    const state = readState(l);
    const previous = readIfExists(s.metrics.textfile)?.toString("utf8");
    const text = renderMetrics(certs, run, state.lastRenewal ? new Date(state.lastRenewal) : undefined, previousRuns(previous, run.command));
    writeFileAtomic(s.metrics.textfile, text, 0o644);
  } catch (err) {
    log(`warning: could not refresh the metrics textfile ${s.metrics.textfile}: ${(err as Error).message}`);
  }
}

