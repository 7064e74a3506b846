import { test } from "node:test";
import assert from "node:assert/strict";
import { UsageError } from "../../agent/common/errors.js";
import {
  isExcludedInterface,
  isNodeAddress,
  selectIdentity,
  type InterfaceInfo,
} from "../../agent/ops/discover.js";

const v4 = (address: string, internal = false) => ({ address, family: "IPv4" as const, internal });
const v6 = (address: string, internal = false) => ({ address, family: "IPv6" as const, internal });

const HOST: InterfaceInfo[] = [
  { name: "lo", addresses: [v4("127.0.0.1", true), v6("::1", true)] },
  {
    name: "eth0",
    operstate: "up",
    addresses: [v6("fe80::1"), v4("192.168.1.20"), v6("2001:db8::20"), v4("169.254.3.3")],
  },
  { name: "bond0", operstate: "up", addresses: [v4("10.0.0.20")] },
  { name: "br0", operstate: "up", addresses: [v4("10.1.0.20")] },
  { name: "docker0", addresses: [v4("172.17.0.1")] },
  { name: "cni0", addresses: [v4("10.244.0.1")] },
  { name: "cali1234", addresses: [v4("10.244.1.1")] },
  { name: "flannel.1", addresses: [v4("10.244.2.0")] },
  { name: "cilium_host", addresses: [v4("10.0.5.1")] },
  { name: "veth9abc", addresses: [v6("fe80::9")] },
  { name: "lxcabc", addresses: [v4("10.0.6.1")] },
  { name: "kube-ipvs0", addresses: [v4("10.96.0.1")] },
  { name: "eth1", operstate: "down", addresses: [v4("192.168.9.9")] },
];

test("discovery keeps physical, bonded and bridged addresses and drops container/CNI ones", () => {
  const id = selectIdentity({ hostname: "Worker-01.lab.example", interfaces: HOST });
  assert.equal(id.nodeName, "worker-01");
  assert.deepEqual(id.ips, ["192.168.1.20", "10.0.0.20", "10.1.0.20", "2001:db8::20"]);
  assert.deepEqual(id.dnsNames, []);
});

test("--interface restricts to one interface and names a missing one", () => {
  assert.deepEqual(selectIdentity({ hostname: "h", interfaces: HOST, interface: "bond0" }).ips, [
    "10.0.0.20",
  ]);
  assert.throws(
    () => selectIdentity({ hostname: "h", interfaces: HOST, interface: "eth7" }),
    /--interface eth7: no such interface/,
  );
});

test("--ip replaces discovery, --node-name and --dns-name override", () => {
  const id = selectIdentity({
    hostname: "h",
    interfaces: HOST,
    ips: ["10.9.9.9", "2001:DB8:0:0::1"],
    nodeName: "Node-X",
    dnsNames: ["Node-X.Lab"],
  });
  assert.deepEqual(id.ips, ["10.9.9.9", "2001:db8::1"]);
  assert.equal(id.nodeName, "node-x");
  assert.deepEqual(id.dnsNames, ["node-x.lab"]);
});

test("address and interface filters", () => {
  for (const a of ["127.0.0.1", "169.254.1.1", "::1", "fe80::1", "ff02::1", "0.0.0.0", "224.0.0.1"])
    assert.equal(isNodeAddress(a), false, a);
  for (const a of ["10.0.0.1", "192.168.1.1", "2001:db8::1", "fd00::5"])
    assert.equal(isNodeAddress(a), true, a);
  for (const n of [
    "docker0",
    "cni0",
    "cali0",
    "flannel.1",
    "cilium_net",
    "veth1",
    "lxc1",
    "kube-ipvs0",
    "lo",
  ])
    assert.equal(isExcludedInterface(n), true, n);
  for (const n of ["eth0", "enp3s0", "bond0", "br0", "wlan0"])
    assert.equal(isExcludedInterface(n), false, n);
});

test("a hostname that gives no valid node name is a usage error naming it; --node-name overrides it", () => {
  for (const bad of [
    "w2 $(id)",
    "a/../../x",
    "-lead",
    "trail-",
    "under_score",
    "x".repeat(64),
    "é",
  ]) {
    assert.throws(
      () => selectIdentity({ hostname: bad, interfaces: HOST }),
      (e: unknown) =>
        e instanceof UsageError &&
        e.exitCode === 2 &&
        e.message.includes(JSON.stringify(bad)) &&
        e.message.includes("--node-name"),
      bad,
    );
    assert.equal(
      selectIdentity({ hostname: bad, interfaces: HOST, nodeName: "w2" }).nodeName,
      "w2",
    );
  }
  // The domain part is dropped and the name lower-cased, as before.
  assert.equal(selectIdentity({ hostname: "W-1.bad_domain", interfaces: HOST }).nodeName, "w-1");
});
