// `node-join probe --ca-url URL`: what a CA server serves, fetched trusting nothing, with each
// certificate's pin and fingerprint to compare out of band before trusting it (as kubeadm prints
// the CA's hash with the join command, and `step certificate fingerprint` prints a root's).
// Each CA type's probe is its backend's (ca/index.ts probeCa).
import { Option, type Command } from "commander";
import { UsageError } from "../common/errors.js";
import { parseDuration } from "../common/duration.js";
import { CA_TYPES, probeCa } from "../ca/index.js";
import { examples, type Cli } from "./context.js";
import { certRow, formatCertRows, type CertRow } from "./pin.js";

const HELP = examples([
  "node-join probe --ca-url http://ca.example:8888",
  "node-join probe --ca-url https://ca.example:9000 --ca-type step-ca",
  "node-join probe --ca-url http://ca.example:8888 --label etcd --json",
]);

/** Said with every probe, in the text and in --json: nothing here was verified. */
export const UNVERIFIED =
  "unverified: compare out of band before you trust it (with the CA operator, or node-join pin on the CA's own file)";

export interface ProbeResult {
  ok: true;
  command: "probe";
  url: string;
  type: string;
  label?: string;
  notice: string;
  certificates: CertRow[];
  tls: CertRow[];
}

interface ProbeOpts {
  caUrl: string;
  caType: string;
  label?: string;
  timeout: string;
  json?: boolean;
}

export function formatProbe(r: ProbeResult): string {
  const what = r.type === "cfssl" ? "info" : "/roots";
  return [
    `${r.type} ${r.url}${r.label ? ` label ${r.label}` : ""}: ${UNVERIFIED}`,
    `CA certificates it serves (${what}):`,
    formatCertRows(r.certificates, "  "),
    ...(r.tls.length ? ["TLS chain it presents:", formatCertRows(r.tls, "  ")] : []),
    "",
  ].join("\n");
}

export function registerProbe(program: Command, cli: Cli): void {
  program
    .command("probe")
    .description("show the CA certificates a CA server serves, unverified, with their pins")
    .requiredOption("--ca-url <url>", "URL of the CA server")
    .addOption(
      new Option("--ca-type <type>", "the CA server's type").choices(CA_TYPES).default("cfssl"),
    )
    .option("--label <label>", "CFSSL: the signer label (cfssl serve's multiroot)")
    .option("--timeout <duration>", "give up after this long", "30s")
    .option("--json", "print a machine-readable result on stdout")
    .addHelpText("after", HELP)
    .action(async (opts: ProbeOpts) => {
      if (!/^https?:\/\/[^/]/.test(opts.caUrl))
        throw new UsageError(`--ca-url ${opts.caUrl}: not an http:// or https:// URL`);
      const timeoutMs = parseDuration(opts.timeout);
      if (!timeoutMs) throw new UsageError(`--timeout ${opts.timeout}: not a duration (30s, 2m)`);
      if (opts.label !== undefined && opts.caType !== "cfssl")
        throw new UsageError(`--label: only a CFSSL server has signer labels`);
      const probed = await probeCa(opts.caType, {
        url: opts.caUrl,
        timeoutMs,
        ...(opts.label !== undefined ? { label: opts.label } : {}),
      });
      const r: ProbeResult = {
        ok: true,
        command: "probe",
        url: opts.caUrl,
        type: opts.caType,
        ...(opts.label !== undefined ? { label: opts.label } : {}),
        notice: UNVERIFIED,
        certificates: probed.served.map(certRow),
        tls: probed.tls.map(certRow),
      };
      cli.setResult({ json: Boolean(opts.json), value: r, text: formatProbe(r) });
    });
}
