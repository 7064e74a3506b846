// Subject alternative names: the node's names and addresses as certificates carry them, and the
// address arithmetic kubeadm does for the apiserver certificate.
import { ipFamily } from "../common/ip.js";
import { normalizeIp } from "./x509.js";

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * A Kubernetes node name: a lower-case RFC 1123 DNS subdomain (apimachinery's
 * IsDNS1123Subdomain: at most 253 characters, labels of at most 63). It becomes the CN
 * system:node:<name> and a SAN, so nothing else may pass: not a flag, not a hostname.
 */
export function isNodeName(name: string): boolean {
  return name.length <= 253 && name.split(".").every((l) => l.length <= 63 && LABEL.test(l));
}

export interface SanSet {
  dnsNames: string[];
  ips: string[];
}

/** Splits names into DNS names and IPs, removing duplicates, keeping first-seen order. */
export function sanSet(names: string[]): SanSet {
  const dnsNames: string[] = [];
  const ips: string[] = [];
  for (const raw of names) {
    const name = raw.trim();
    if (!name) continue;
    if (ipFamily(name)) {
      const ip = normalizeIp(name);
      if (!ips.includes(ip)) ips.push(ip);
    } else {
      const dns = name.toLowerCase();
      if (!dnsNames.includes(dns)) dnsNames.push(dns);
    }
  }
  return { dnsNames, ips };
}

/** The host part of host:port, [v6]:port or a bare host. */
export function endpointHost(endpoint: string): string {
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(endpoint);
  if (bracket) return bracket[1]!;
  if (ipFamily(endpoint)) return endpoint;
  const colon = endpoint.lastIndexOf(":");
  return colon > 0 ? endpoint.slice(0, colon) : endpoint;
}

/** An IP address as a number, with its family; undefined for anything else. */
export function ipValue(ip: string): { family: 4 | 6; value: bigint } | undefined {
  const family = ipFamily(ip);
  if (!family) return undefined;
  return { family, value: family === 4 ? ipv4ToBigInt(ip) : ipv6ToBigInt(ip) };
}

export interface Cidr {
  family: 4 | 6;
  /** The network address with the host bits cleared. */
  network: bigint;
  bits: number;
}

/** `10.96.0.0/12` or `fd00::/8` as a network and prefix length; undefined if it is none. */
export function parseCidr(cidr: string): Cidr | undefined {
  const [addr, bitsText, extra] = cidr.split("/");
  const ip = ipValue(addr ?? "");
  const bits = Number(bitsText);
  if (!ip || extra !== undefined || !/^\d+$/.test(bitsText ?? "")) return undefined;
  if (bits > (ip.family === 4 ? 32 : 128)) return undefined;
  return { family: ip.family, network: ip.value & cidrMask(ip.family, bits), bits };
}

/** Whether `ip` lies in `cidr`. */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const v = ipValue(ip);
  return v?.family === cidr.family && (v.value & cidrMask(cidr.family, cidr.bits)) === cidr.network;
}

function cidrMask(family: 4 | 6, bits: number): bigint {
  const width = family === 4 ? 32 : 128;
  return ((1n << BigInt(width)) - 1n) ^ ((1n << BigInt(width - bits)) - 1n);
}

/**
 * First usable address of a CIDR: what kubeadm puts in the apiserver cert (10.96.0.1 for
 * 10.96.0.0/12).
 */
export function firstServiceIp(cidrList: string): string {
  const cidr = cidrList.split(",")[0]!.trim();
  const c = parseCidr(cidr);
  if (!c) throw new Error(`invalid CIDR ${cidr}`);
  const first = c.network + 1n;
  return c.family === 4 ? bigIntToIpv4(first) : bigIntToIpv6(first);
}

function ipv4ToBigInt(ip: string): bigint {
  return ip.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
}
function bigIntToIpv4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join(".");
}
function ipv6ToBigInt(ip: string): bigint {
  const full = normalizeIp(ip);
  const [head, tail] = full.includes("::") ? full.split("::") : [full, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups =
    tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}
function bigIntToIpv6(v: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
  return normalizeIp(groups.join(":"));
}
