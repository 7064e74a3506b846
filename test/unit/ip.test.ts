// agent/common/ip.ts must answer exactly as node:net's isIP (which it replaces to keep its IPv6
// regular
// expression out of every start): the same family for every string, valid or not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isIP } from "node:net";
import fc from "fast-check";
import { ipFamily } from "../../agent/common/ip.js";
import { fuzzRuns, seedFastCheck } from "../helpers/fuzz.js";

seedFastCheck();

test("ipFamily: hand-picked valid and invalid addresses agree with isIP", () => {
  const cases = [
    "10.0.0.21",
    "0.0.0.0",
    "255.255.255.255",
    "256.0.0.1",
    "01.2.3.4",
    "1.2.3",
    "1.2.3.4.5",
    "1.2.3.4 ",
    " 1.2.3.4",
    "",
    "::",
    "::1",
    "1::",
    "2001:db8::21",
    "2001:DB8::21",
    "fe80::1%eth0",
    "fe80::1%",
    "fe80::1%eth0%1",
    "fe80::1%e$",
    "::ffff:10.0.0.1",
    "::10.0.0.1",
    "1:2:3:4:5:6:10.0.0.1",
    "1:2:3:4:5:6:7:10.0.0.1",
    "1:2:3:4:5::10.0.0.1",
    "1:2:3:4:5:6::10.0.0.1",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1::3:4:5:6:7:8",
    "1:2:3:4:5:6:7",
    ":::",
    "1:::2",
    "1::2::3",
    ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:",
    "12345::",
    "g::1",
    "::01.2.3.4",
    "::1.2.3",
    "1.2.3.4::",
    "::1.2.3.4:5",
    "a:b:c:d:e:f:0:1",
    "A:B:C:D:E:F:0:1",
    "0000:0000::0000",
    "::%1",
    "1.2.3.4%eth0",
  ];
  for (const c of cases) assert.equal(ipFamily(c), isIP(c), JSON.stringify(c));
});

test("ipFamily agrees with isIP on generated addresses and near misses", () => {
  const alphabet = fc.constantFrom(..."0123456789abcdefABCDEFg:.%-z ".split(""));
  const noise = fc.array(alphabet, { maxLength: 48 }).map((a) => a.join(""));
  const group = fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16));
  const v6ish = fc
    .tuple(
      fc.array(group, { maxLength: 9 }),
      fc.array(group, { maxLength: 9 }),
      fc.boolean(),
      fc.option(fc.ipV4(), { nil: undefined }),
      fc.option(fc.constantFrom("eth0", "1", "en-0.1", ""), { nil: undefined }),
    )
    .map(
      ([h, t, gap, v4, zone]) =>
        `${h.join(":")}${gap ? "::" : t.length && h.length ? ":" : ""}${t.join(":")}${v4 ? `${t.length || gap ? ":" : ""}${v4}` : ""}${zone !== undefined ? `%${zone}` : ""}`,
    );
  const addr = fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.ipV6(), noise, v6ish);
  fc.assert(
    fc.property(addr, (a) => ipFamily(a) === isIP(a)),
    { numRuns: fuzzRuns(20_000) },
  );
});
