// IP address syntax, as node:net's isIP reads it, without node:net: its IPv6 regular expression
// alone costs about 5 ms to compile on every start, a tenth of a `renew` with nothing due.
// test/unit/ip.test.ts holds this to isIP's answers.

const V4_OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]\\d|\\d)";
const V4 = new RegExp(`^(?:${V4_OCTET}\\.){3}${V4_OCTET}$`);
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const ZONE = /^[0-9a-zA-Z.:-]+$/;

function isV6(text: string): boolean {
  let addr = text;
  const pct = addr.indexOf("%");
  if (pct >= 0) {
    if (!ZONE.test(addr.slice(pct + 1))) return false;
    addr = addr.slice(0, pct);
  }
  const lastColon = addr.lastIndexOf(":");
  if (lastColon < 0) return false;
  // A dotted IPv4 tail stands for the last two groups.
  const tail = addr.slice(lastColon + 1);
  if (tail.includes(".")) {
    if (!V4.test(tail)) return false;
    addr = `${addr.slice(0, lastColon + 1)}0:0`;
  }
  const gap = addr.indexOf("::");
  if (gap < 0) {
    const groups = addr.split(":");
    return groups.length === 8 && groups.every((g) => HEX_GROUP.test(g));
  }
  if (addr.indexOf("::", gap + 1) >= 0) return false;
  const head = addr.slice(0, gap);
  const rest = addr.slice(gap + 2);
  const groups = [...(head ? head.split(":") : []), ...(rest ? rest.split(":") : [])];
  // "::" stands for at least one group.
  return groups.length <= 7 && groups.every((g) => HEX_GROUP.test(g));
}

/** 4 or 6 for an IPv4 or IPv6 address (with an optional %zone), 0 otherwise: node:net's isIP. */
export function ipFamily(text: string): 0 | 4 | 6 {
  if (V4.test(text)) return 4;
  return isV6(text) ? 6 : 0;
}
