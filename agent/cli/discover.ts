// `node-join discover`: the node name and addresses that would go into the CSRs, and where each
// came from.
import type { Command } from "commander";
import { loadSettings, type GlobalOptions } from "../config/load.js";
import { optionByKey, type OptionKey } from "../config/options.js";
import type { Settings } from "../config/settings.js";
import { resolveIdentity } from "../engine/identity.js";
import type { Discovered } from "../ops/discover.js";
import { sanSet } from "../pki/sans.js";
import { examples, type Cli } from "./context.js";
import { addOptionFlags } from "./flags.js";

const HELP = examples(["node-join discover", "node-join discover --interface eth1 --json"]);

export interface DiscoverResult {
  nodeName: string;
  ips: string[];
  dnsNames: string[];
  sources: Discovered["sources"];
  clientCertificate: { commonName: string; organizations: string[] };
  servingCertificate: {
    commonName: string;
    organizations: string[];
    dnsNames: string[];
    ips: string[];
  };
}

export async function runDiscover(s: Settings): Promise<DiscoverResult> {
  const id = await resolveIdentity(s, "systeminformation");
  const cn = `system:node:${id.nodeName}`;
  const sans = sanSet([id.nodeName, ...id.dnsNames, ...id.ips]);
  return {
    nodeName: id.nodeName,
    ips: id.ips,
    dnsNames: id.dnsNames,
    sources: id.sources,
    clientCertificate: { commonName: cn, organizations: ["system:nodes"] },
    servingCertificate: { commonName: cn, organizations: ["system:nodes"], ...sans },
  };
}

export function formatDiscover(r: DiscoverResult): string {
  const lines = [
    `node name:    ${r.nodeName}`,
    `client cert:  CN=${r.clientCertificate.commonName}, O=system:nodes`,
    `serving cert: CN=${r.servingCertificate.commonName}, O=system:nodes`,
    `  DNS SANs:   ${r.servingCertificate.dnsNames.join(", ") || "(none)"}`,
    `  IP SANs:    ${r.servingCertificate.ips.join(", ") || "(none)"}`,
    ...r.sources.map((s) => `  ${s.address} from ${s.interface}`),
  ];
  return lines.join("\n") + "\n";
}

const FLAGS: OptionKey[] = ["nodeName", "ips", "dnsNames", "interface"];

export function registerDiscover(program: Command, cli: Cli): void {
  const cmd = program
    .command("discover")
    .description("print the node name and addresses that would go into the CSRs")
    .option("--json", "machine-readable output")
    .addHelpText("after", HELP);
  addOptionFlags(
    cmd,
    FLAGS.map((k) => optionByKey(k)!),
  );
  cmd.action(async (opts: GlobalOptions & Record<string, unknown>) => {
    const loaded = loadSettings({ ...opts, root: "/" }, cli.io.env);
    const r = await runDiscover(loaded.settings);
    cli.setResult({
      json: Boolean(opts.json),
      value: { ok: true, command: "discover", ...r },
      text: formatDiscover(r),
    });
  });
}
