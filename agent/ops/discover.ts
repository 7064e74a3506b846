// What goes into the node's certificates: its name and addresses. The filtering is a pure function
// over an interface inventory, so it is tested without the host's real interfaces.
import { readFileSync } from "node:fs";
import { hostname, networkInterfaces } from "node:os";
import { ipFamily } from "../common/ip.js";
import { isNodeName } from "../pki/sans.js";
import { normalizeIp } from "../pki/x509.js";
import { UsageError } from "../common/errors.js";

/** Container, CNI and overlay interfaces: their addresses are not the node's. */
export const EXCLUDED_PREFIXES = [
  "docker",
  "cni",
  "cali",
  "flannel",
  "cilium",
  "veth",
  "lxc",
  "kube-ipvs",
  "tunl",
  "vxlan",
  "weave",
  "nodelocaldns",
  "kube-bridge",
  "virbr",
  "podman",
] as const;

export interface InterfaceInfo {
  name: string;
  /** "down" interfaces are left out. */
  operstate?: string;
  addresses: { address: string; family: "IPv4" | "IPv6"; internal: boolean }[];
}

export interface Discovered {
  nodeName: string;
  ips: string[];
  dnsNames: string[];
  /** Interface each address came from, for `discover` output. */
  sources: { interface: string; address: string }[];
}

export function isExcludedInterface(name: string): boolean {
  return name === "lo" || EXCLUDED_PREFIXES.some((p) => name.startsWith(p));
}

/** Addresses that identify the node: no loopback, no link-local, no multicast, no unspecified. */
export function isNodeAddress(address: string): boolean {
  const kind = ipFamily(address);
  if (kind === 4) {
    const [a, b] = address.split(".").map(Number) as [number, number];
    if (a === 127 || a === 0 || a >= 224) return false;
    if (a === 169 && b === 254) return false;
    return true;
  }
  if (kind === 6) {
    const ip = normalizeIp(address);
    if (ip === "::1" || ip === "::") return false;
    const first = parseInt(ip.split(":")[0] || "0", 16);
    if ((first & 0xffc0) === 0xfe80) return false; // link-local fe80::/10
    if ((first & 0xff00) === 0xff00) return false; // multicast
    if (ip.startsWith("::ffff:")) return false;
    return true;
  }
  return false;
}

export interface DiscoverOptions {
  hostname: string;
  inventory?: "systeminformation" | "sysfs";
  interfaces: InterfaceInfo[];
  nodeName?: string;
  ips?: string[];
  dnsNames?: string[];
  interface?: string;
}

export function selectIdentity(opts: DiscoverOptions): Discovered {
  const nodeName = (opts.nodeName ?? opts.hostname.split(".")[0]!).toLowerCase();
  // The hostname is the host's to set, not the operator's: it must pass the rule --node-name
  // passes before it goes into a CN, a SAN and the persisted config.
  if (opts.nodeName === undefined && !isNodeName(nodeName)) {
    throw new UsageError(
      `hostname ${JSON.stringify(opts.hostname)} gives no valid node name (a lower-case DNS subdomain): give one with --node-name`,
    );
  }
  const dnsNames = [...new Set((opts.dnsNames ?? []).map((d) => d.toLowerCase()))];
  if (opts.ips && opts.ips.length > 0) {
    const ips = [...new Set(opts.ips.map(normalizeIp))];
    return {
      nodeName,
      ips,
      dnsNames,
      sources: ips.map((address) => ({ interface: "(--ip)", address })),
    };
  }
  let candidates = opts.interfaces;
  if (opts.interface) {
    candidates = candidates.filter((i) => i.name === opts.interface);
    if (candidates.length === 0) {
      const known = opts.interfaces.map((i) => i.name).join(", ");
      throw new UsageError(`--interface ${opts.interface}: no such interface (have: ${known})`);
    }
  } else {
    candidates = candidates.filter((i) => !isExcludedInterface(i.name));
  }
  const sources: Discovered["sources"] = [];
  for (const iface of candidates) {
    if (iface.operstate === "down") continue;
    // IPv4 first, the order the kubelet reports node addresses in.
    const sorted = [...iface.addresses].sort((a, b) =>
      a.family === b.family ? 0 : a.family === "IPv4" ? -1 : 1,
    );
    for (const a of sorted) {
      if (a.internal || !isNodeAddress(a.address)) continue;
      const address = normalizeIp(a.address);
      if (!sources.some((s) => s.address === address))
        sources.push({ interface: iface.name, address });
    }
  }
  sources.sort((a, b) =>
    ipFamily(a.address) === ipFamily(b.address) ? 0 : ipFamily(a.address) === 4 ? -1 : 1,
  );
  return { nodeName, ips: sources.map((s) => s.address), dnsNames, sources };
}

/**
 * The host's interfaces: an inventory of operational states, and node:os for every address
 * (systeminformation reports only one address per family and interface). The inventory comes from
 * systeminformation, or for renew, which runs twice a day on every node, straight from
 * /sys/class/net/<if>/operstate: the file systeminformation itself reads, at a fraction of the cost
 * (it also spawns helper commands), so both give the same answer.
 */
export async function hostInterfaces(
  inventory: "systeminformation" | "sysfs" = "systeminformation",
): Promise<InterfaceInfo[]> {
  const addresses = networkInterfaces();
  let states = new Map<string, string>();
  try {
    if (inventory === "sysfs") {
      states = new Map(
        Object.keys(addresses).map((name) => [
          name,
          readFileSync(`/sys/class/net/${name}/operstate`, "utf8").trim(),
        ]),
      );
    } else {
      const si = await import("../vendor/systeminformation.js");
      const list = await si.networkInterfaces();
      states = new Map((Array.isArray(list) ? list : [list]).map((i) => [i.iface, i.operstate]));
    }
  } catch {
    // The inventory only refines the address list; without it every interface counts as up.
  }
  return Object.entries(addresses).map(([name, addrs]) => ({
    name,
    ...(states.has(name) ? { operstate: states.get(name)! } : {}),
    addresses: (addrs ?? []).map((a) => ({
      address: a.address.split("%")[0]!,
      family: a.family,
      internal: a.internal,
    })),
  }));
}

export async function discover(
  opts: Omit<DiscoverOptions, "hostname" | "interfaces">,
): Promise<Discovered> {
  const interfaces = opts.ips && opts.ips.length > 0 ? [] : await hostInterfaces(opts.inventory);
  return selectIdentity({ ...opts, hostname: hostname(), interfaces });
}
