// The CA server's TLS identity (issue 20, finding 1): what makes a certificate that chains to the
// anchors and names the CA's address not the CA's own. The extension reader is checked against
// @peculiar/x509's parser on generated certificates, and under bit flips.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { notIssuedToANode } from "../../agent/ca/common.js";
import { STEP_PROVISIONER_OID, stepCaServerIdentity } from "../../agent/ca/stepca/client.js";
import { CERT_KINDS, kubernetesIdentity, type TableContext } from "../../agent/pki/certs.js";
import { extensionOids } from "../../agent/pki/der.js";
import { parseCert } from "../../agent/pki/x509.js";
import { EKU, mint, type CertSpec } from "../helpers/chains.js";

const root = await mint({ cn: "Smallstep Root CA", ca: true });
const intermediate = await mint({ cn: "Smallstep Intermediate CA", ca: true, issuer: root });
const leaf = (spec: Partial<CertSpec>) =>
  mint({ cn: "Step Online CA", issuer: intermediate, ekus: [EKU.serverAuth], ...spec });

test("extensionOids lists a certificate's extensions in order, as @peculiar/x509 reads them; none: []; not a certificate: undefined", async () => {
  const shapes: Partial<CertSpec>[] = [
    {},
    { extraOids: [STEP_PROVISIONER_OID] },
    { dns: ["ca.example"], ips: ["127.0.0.1"], extraOids: ["1.2.840.113549.1.9.7", "2.999.1"] },
    { noKeyIds: true, keyUsage: null },
  ];
  for (const spec of shapes) {
    const m = await leaf(spec);
    assert.deepEqual(
      extensionOids(m.der),
      [...m.cert.extensions].map((e) => e.type),
      JSON.stringify(spec),
    );
  }
  const bare = await mint({ cn: "bare", keyUsage: null, noKeyIds: true });
  assert.equal(bare.cert.extensions.length, 0);
  assert.deepEqual(extensionOids(bare.der), []);
  const m = await leaf({ extraOids: [STEP_PROVISIONER_OID] });
  assert.equal(extensionOids(m.der.subarray(0, m.der.length - 1)), undefined, "truncated");
  assert.equal(extensionOids(Buffer.concat([m.der, Buffer.from([0])])), undefined, "trailing");
  assert.equal(extensionOids(Buffer.from("not a certificate")), undefined);
});

test("extensionOids never throws on a flipped certificate, and answers dotted OIDs or undefined", async () => {
  const m = await leaf({ extraOids: [STEP_PROVISIONER_OID], dns: ["ca.example"] });
  fc.assert(
    fc.property(fc.nat(m.der.length * 8 - 1), fc.nat(m.der.length - 1), (bit, cut) => {
      const der = Buffer.from(m.der);
      der[bit >> 3]! ^= 1 << (bit & 7);
      for (const d of [der, der.subarray(0, cut)]) {
        const oids = extensionOids(d);
        assert.ok(oids === undefined || oids.every((o) => /^[0-2](\.\d+)+$/.test(o)));
      }
    }),
    { numRuns: 2000 },
  );
});

test("kubernetesIdentity: every kind of the certificate table with a name of its own is one; the etcd certificates (CN = the node's name, no O) and a CA server's are not", () => {
  const ctx: TableContext = { node: { nodeName: "cp1", ips: [], dnsNames: [] }, apiServer: "" };
  const flagged = CERT_KINDS.filter(
    (k) =>
      kubernetesIdentity({
        commonNames: [k.commonName(ctx)],
        organizations: k.organizations(ctx),
      }) !== undefined,
  ).map((k) => k.name);
  assert.deepEqual(
    CERT_KINDS.map((k) => k.name).filter((n) => !flagged.includes(n)),
    ["etcd-server", "etcd-peer"],
  );
  assert.equal(
    kubernetesIdentity({ commonNames: ["system:node:w2"], organizations: ["system:nodes"] }),
    'CN "system:node:w2"',
  );
  assert.equal(
    kubernetesIdentity({ commonNames: ["127.0.0.1"], organizations: ["system:nodes"] }),
    'O "system:nodes"',
  );
  assert.equal(
    kubernetesIdentity({ commonNames: ["w1"], organizations: ["system:bootstrappers"] }),
    'O "system:bootstrappers"',
  );
  assert.equal(
    kubernetesIdentity({ commonNames: ["Step Online CA"], organizations: [] }),
    undefined,
  );
});

test("the CA server's identity: a node's certificate is refused for every CA type; step-ca's own TLS certificate has no provisioner extension, and with --ca-tls-file (a proxy's own CA) that part is left to the file", async () => {
  const stepCa = stepCaServerIdentity({});
  const viaProxy = stepCaServerIdentity({ tlsCaFile: "/etc/node-join/proxy-ca.crt" });
  const own = parseCert((await leaf({ ips: ["127.0.0.1"] })).pem);
  const enrolled = parseCert(
    (await leaf({ cn: "127.0.0.1", ips: ["127.0.0.1"], extraOids: [STEP_PROVISIONER_OID] })).pem,
  );
  const kubelet = parseCert(
    (
      await leaf({
        cn: "system:node:w2",
        o: ["system:nodes"],
        ips: ["127.0.0.1"],
        extraOids: [STEP_PROVISIONER_OID],
      })
    ).pem,
  );
  assert.equal(stepCa(own), undefined);
  assert.equal(notIssuedToANode(own), undefined);
  assert.match(
    stepCa(enrolled)!,
    /^its TLS certificate "CN=127\.0\.0\.1" was issued through a step-ca provisioner/,
  );
  assert.equal(viaProxy(enrolled), undefined);
  assert.equal(notIssuedToANode(enrolled), undefined, "CFSSL leaves no mark of a profile");
  for (const rule of [stepCa, viaProxy, notIssuedToANode])
    assert.equal(
      rule(kubelet),
      'its TLS certificate "CN=system:node:w2" carries CN "system:node:w2", an identity the cluster\'s CAs issue to nodes and cluster components, never to a CA server',
    );
});
