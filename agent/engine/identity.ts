// Who this node is: its name and addresses (discovered or configured), and the context the
// certificate table builds subjects and SANs from.
import { UsageError } from "../common/errors.js";
import type { Settings } from "../config/settings.js";
import { discover, type Discovered } from "../ops/discover.js";
import type { TableContext } from "../pki/certs.js";
import { endpointHost } from "../pki/sans.js";

/**
 * `sysfs`: read interface state from sysfs instead of systeminformation (renew runs twice a day).
 */
export async function resolveIdentity(
  s: Settings,
  inventory: "systeminformation" | "sysfs",
): Promise<Discovered> {
  return discover({
    inventory,
    ...(s.nodeName ? { nodeName: s.nodeName } : {}),
    ips: s.ips,
    dnsNames: s.dnsNames,
    ...(s.interface ? { interface: s.interface } : {}),
  });
}

export function tableContext(s: Settings, id: Discovered): TableContext {
  const ctx: TableContext = {
    node: { nodeName: id.nodeName, ips: id.ips, dnsNames: id.dnsNames },
    apiServer: s.apiServer,
  };
  const c = s.controlPlane;
  if (c) {
    const advertiseAddress = c.advertiseAddress ?? id.ips[0];
    if (!advertiseAddress)
      throw new UsageError("--advertise-address is required: no node IP was discovered");
    if (!c.endpoint)
      throw new UsageError(
        "--control-plane-endpoint or --api-server is required for role control-plane",
      );
    endpointHost(c.endpoint);
    ctx.controlPlane = { ...c, advertiseAddress, endpoint: c.endpoint };
  }
  return ctx;
}
