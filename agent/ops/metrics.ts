// A Prometheus textfile (node_exporter's textfile collector) refreshed by every join, renew and
// status run: expiry and renewal deadline per certificate, expiry per CA certificate, last
// successful renewal, last result.
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { renewalDeadline, type DeadlinePolicy } from "../pki/deadline.js";
import { subjectLine, type CaReading, type KindReading } from "../pki/installed.js";
import { certPin } from "../pki/x509.js";
import { writeFileAtomic } from "../store/fsio.js";
import { hostPath, type Layout } from "../store/layout.js";
import { readRegularFileBounded } from "../store/safe-read.js";
import { readState } from "../store/state.js";

export interface CertMetric {
  kind: string;
  file: string;
  notAfter?: Date;
  deadline?: Date;
  /**
   * The assessment's verdict (engine/assess.ts Cause): "ok" when renew keeps it, otherwise why it
   * would re-issue it now; absent: not judged.
   */
  cause?: string;
}

/** One certificate of a CA file (several during a CA rotation). */
export interface CaMetric {
  /** The CA as messages name it: kubernetes, front-proxy, etcd. */
  ca: string;
  subject: string;
  /** SPKI pin, sha256:<hex>, as --ca-cert-hash takes it. */
  pin: string;
  notAfter: Date;
}

/** Where the node's enrolment identity lives, and how many secret files a disk copy carries. */
export interface IdentityMetric {
  where: "tpm" | "file" | "none";
  secretFiles: number;
}

export interface RunMetric {
  command: string;
  success: boolean;
  time: Date;
  renewed?: number;
  /**
   * The run found the host's clock not set (engine/clock.ts): how far off it was, in ms (the host's
   * clock minus its floor or the CA's Date; negative: behind). Absent: it did not.
   */
  clockNotSet?: { offsetMs: number };
}

const esc = (v: string): string =>
  v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const secs = (d: Date): string => String(Math.floor(d.getTime() / 1000));

/**
 * The last-run samples of other commands in an existing textfile, so each command keeps its own.
 */
export function previousRuns(text: string | undefined, except: string): RunMetric[] {
  if (!text) return [];
  const runs = new Map<string, RunMetric>();
  for (const m of text.matchAll(
    /^node_join_last_run_(success|timestamp_seconds)\{command="([a-z-]+)"\} (\d+)$/gm,
  )) {
    const command = m[2]!;
    if (command === except) continue;
    const r = runs.get(command) ?? { command, success: false, time: new Date(0) };
    if (m[1] === "success") r.success = m[3] === "1";
    else r.time = new Date(Number(m[3]) * 1000);
    runs.set(command, r);
  }
  return [...runs.values()];
}

export function renderMetrics(
  certs: CertMetric[],
  run: RunMetric,
  lastRenewal: Date | undefined,
  others: RunMetric[] = [],
  cas: CaMetric[] = [],
  identity?: IdentityMetric,
): string {
  const runs = [...others, run].sort((a, b) => a.command.localeCompare(b.command));
  const lines: string[] = [];
  const family = (name: string, help: string, samples: string[]) => {
    if (samples.length === 0) return;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, ...samples);
  };
  const label = (c: CertMetric) => `{kind="${esc(c.kind)}",file="${esc(c.file)}"}`;
  family(
    "node_join_certificate_expiry_timestamp_seconds",
    "NotAfter of each certificate node-join manages (Unix time).",
    certs
      .filter((c) => c.notAfter)
      .map((c) => `node_join_certificate_expiry_timestamp_seconds${label(c)} ${secs(c.notAfter!)}`),
  );
  family(
    "node_join_certificate_renewal_deadline_timestamp_seconds",
    "When node-join renews each certificate (Unix time).",
    certs
      .filter((c) => c.deadline)
      .map(
        (c) =>
          `node_join_certificate_renewal_deadline_timestamp_seconds${label(c)} ${secs(c.deadline!)}`,
      ),
  );
  family(
    "node_join_certificate_present",
    "1 when the certificate file is present and readable, 0 when missing or broken.",
    certs.map((c) => `node_join_certificate_present${label(c)} ${c.notAfter ? 1 : 0}`),
  );
  family(
    "node_join_certificate_renewal_needed",
    "1 when renew would re-issue the certificate now (cause: why), 0 when it keeps it (cause ok).",
    certs
      .filter((c) => c.cause)
      .map(
        (c) =>
          `node_join_certificate_renewal_needed{kind="${esc(c.kind)}",file="${esc(c.file)}",cause="${esc(c.cause!)}"} ${c.cause === "ok" ? 0 : 1}`,
      ),
  );
  family(
    "node_join_ca_expiry_timestamp_seconds",
    "NotAfter of each CA certificate the node trusts (Unix time); node-join does not renew CAs.",
    caSeries(cas).map(
      (c) =>
        `node_join_ca_expiry_timestamp_seconds{ca="${esc(c.ca)}",subject="${esc(c.subject)}",pin="${esc(c.pin)}"} ${secs(c.notAfter)}`,
    ),
  );
  family(
    "node_join_last_renewal_timestamp_seconds",
    "Time of the last successful renewal (Unix time).",
    lastRenewal ? [`node_join_last_renewal_timestamp_seconds ${secs(lastRenewal)}`] : [],
  );
  family(
    "node_join_last_run_success",
    "1 if the last run of the command succeeded, 0 if it failed.",
    runs.map((r) => `node_join_last_run_success{command="${esc(r.command)}"} ${r.success ? 1 : 0}`),
  );
  family(
    "node_join_last_run_timestamp_seconds",
    "Time of the last run of the command (Unix time).",
    runs.map(
      (r) => `node_join_last_run_timestamp_seconds{command="${esc(r.command)}"} ${secs(r.time)}`,
    ),
  );
  if (identity) {
    family(
      "node_join_identity_info",
      "1 for where the node's enrolment identity lives: tpm (TPM-wrapped keys only), file, or none.",
      [`node_join_identity_info{where="${identity.where}"} 1`],
    );
    family(
      "node_join_identity_secret_files",
      "Secret files (auth keys, tokens, passwords, X5C keys) on disk that a copy of it would carry.",
      [`node_join_identity_secret_files ${identity.secretFiles}`],
    );
  }
  // Written by every run, so that the next one that finds the clock right clears it.
  family(
    "node_join_clock_not_set",
    "1 when the last run found the host's clock not set (before its floor, or off a CA's Date by more than clock.tolerance): nothing judged or written; 0 when it did not.",
    [`node_join_clock_not_set ${run.clockNotSet ? 1 : 0}`],
  );
  family(
    "node_join_clock_offset_seconds",
    "How far off the last run found the host's clock when not set: the host's time minus its floor or the CA's Date (negative: behind).",
    run.clockNotSet
      ? [`node_join_clock_offset_seconds ${Math.round(run.clockNotSet.offsetMs / 1000)}`]
      : [],
  );
  if (run.renewed !== undefined) {
    family(
      "node_join_last_run_renewed_certificates",
      "Certificates renewed by the last renew run.",
      [`node_join_last_run_renewed_certificates ${run.renewed}`],
    );
  }
  return lines.join("\n") + "\n";
}

/**
 * One series per CA, subject and key. A CA certificate re-issued for the same key and subject (a
 * renewed self-signed root) would repeat a label set, which makes node_exporter drop the whole
 * textfile; chain building (Go's crypto/x509 tries every candidate with that subject) keeps
 * trusting the key until the latest of them expires, so that one is the series' value.
 */
function caSeries(cas: CaMetric[]): CaMetric[] {
  const series = new Map<string, CaMetric>();
  for (const c of cas) {
    const key = JSON.stringify([c.ca, c.subject, c.pin]);
    const seen = series.get(key);
    if (!seen || seen.notAfter < c.notAfter) series.set(key, c);
  }
  return [...series.values()];
}

/** The CA certificates of the CA files read, in file order. */
export function caMetrics(readings: CaReading[]): CaMetric[] {
  return readings.flatMap((r) =>
    (r.certs ?? []).map((c) => ({
      ca: r.ca.display,
      subject: subjectLine(c),
      pin: certPin(c),
      notAfter: c.notAfter,
    })),
  );
}

/** The textfile is kept only where node_exporter's collector directory exists. */
export function metricsEnabled(path: string): boolean {
  return existsSync(dirname(path));
}

export interface MetricsRefresh {
  textfile: string;
  layout: Layout;
  /** The installed state of the role, read only when the textfile is kept. */
  read: () => KindReading[];
  /** The role's CA files, read likewise. */
  readCas: () => CaReading[];
  /** The verdict on a kind, as status gives it: what renew would do with it now. */
  cause?: (r: KindReading) => string;
  policy: DeadlinePolicy;
  run: RunMetric;
  /** Where the node's identity lives (engine/tpm-keys.ts identityStatus), read likewise. */
  identity?: () => IdentityMetric;
}

/**
 * The largest previous textfile read back: node-join's own is a few KiB (some lines per
 * certificate); anything larger was not written by it.
 */
export const TEXTFILE_MAX_BYTES = 1 << 20;

/**
 * The previous textfile's text, for the other commands' last runs; undefined when there is none or
 * it cannot be trusted. The collector directory is often writable by the node_exporter user, who
 * could put a FIFO, a link to /dev/zero or a huge file there: the read neither blocks, nor follows
 * a link, nor reads more than TEXTFILE_MAX_BYTES, and a refused file is a warning (the atomic
 * rename that follows replaces whatever is there with a regular file).
 */
function previousText(path: string, log: (line: string) => void): string | undefined {
  try {
    return readRegularFileBounded(path, TEXTFILE_MAX_BYTES)?.toString("utf8");
  } catch (err) {
    log(`warning: metrics textfile: ${(err as Error).message}; writing a fresh one`);
    return undefined;
  }
}

/**
 * Refreshes the textfile after a run; never fails the run (a broken exporter directory is logged).
 * Without the collector directory nothing is read: renew runs twice a day on every node.
 */
export function refreshMetrics(m: MetricsRefresh, log: (line: string) => void): void {
  if (!metricsEnabled(m.textfile)) return;
  try {
    const certs = m.read().map((r): CertMetric => {
      const file = hostPath(r.file, m.layout.root);
      const leaf = r.installed?.chain[0];
      const cause = m.cause?.(r);
      const judged = { kind: r.kind.name, file, ...(cause ? { cause } : {}) };
      if (!leaf) return judged;
      return {
        ...judged,
        notAfter: leaf.notAfter,
        deadline: renewalDeadline(leaf, m.policy),
      };
    });
    const state = readState(m.layout);
    const previous = previousText(m.textfile, log);
    const lastRenewal = state.lastRenewal ? new Date(state.lastRenewal) : undefined;
    writeFileAtomic(
      m.textfile,
      renderMetrics(
        certs,
        m.run,
        lastRenewal,
        previousRuns(previous, m.run.command),
        caMetrics(m.readCas()),
        m.identity?.(),
      ),
      0o644,
    );
  } catch (err) {
    log(`warning: could not refresh the metrics textfile ${m.textfile}: ${(err as Error).message}`);
  }
}
