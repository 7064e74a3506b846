import type { Discovered } from "../ops/discover.js";
import { resolveIdentity } from "../engine/engine.js";
import { sanSet } from "../pki/certs.js";
import type { Settings } from "../config/settings.js";

export interface DiscoverResult {
  nodeName: string;
  ips: string[];
  dnsNames: string[];
  sources: Discovered["sources"];
  clientCertificate: { commonName: string; organizations: string[] };
  servingCertificate: { commonName: string; organizations: string[]; dnsNames: string[]; ips: string[] };
}

export async function runDiscover(s: Settings): Promise<DiscoverResult> {
  const id = await resolveIdentity(s);
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
