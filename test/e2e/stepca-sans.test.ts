// A real step-ca whose provisioner template places the token's "sans" (step-ca's default
// `"sans": {{ toJson .SANs }}`, plus the fixed O a worker needs) instead of the CSR's, as the
// harness's templates do. node-join's token for a kind without SANs says sans: [CN] (step-ca takes
// [sub] for an empty claim anyway), so the kubelet client certificate carries its CN as a SAN,
// typed by step-ca's x509util.SplitSANs: "system:node:w1" has a scheme, so it is a URI. That is
// what node-join asked for, and the verifier, which takes exactly the SAN sets the backend asked
// for, accepts it; an extra name would still be refused (test/e2e/hostile-ca.test.ts).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requestedSansFor } from "../../agent/ca/index.js";
import { findKind, templateFor } from "../../agent/pki/certs.js";
import { mismatch } from "../../agent/pki/verify.js";
import { parseCert, splitPemCertificates } from "../../agent/pki/x509.js";
import { runCli } from "../helpers/cli.js";
import { tempRoot } from "../helpers/fs.js";
import { opensslInfo } from "../helpers/openssl.js";
import { startStepCa, stepWorkerJoin, type StepCaHandle } from "../helpers/stepca.js";

const TOKEN_SANS_TEMPLATE = `{
	"subject": {
		"commonName": {{ toJson .Subject.CommonName }},
		"organization": {{ toJson .organization }}
	},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature", "keyEncipherment"],
	"extKeyUsage": ["serverAuth", "clientAuth"]
}`;

let ca: StepCaHandle;
before(async () => {
  ca = await startStepCa({ provisioners: [{ name: "workers", organization: ["system:nodes"] }] });
  const config = JSON.parse(readFileSync(ca.configFile, "utf8")) as {
    authority: { provisioners: { name: string; options: { x509: { template: string } } }[] };
  };
  for (const p of config.authority.provisioners)
    if (p.name === "workers") p.options.x509.template = TOKEN_SANS_TEMPLATE;
  writeFileSync(ca.configFile, JSON.stringify(config, null, 2));
  await ca.restart();
});
after(async () => ca?.stop());

function installed(root: string, file: string): string {
  const dir = join(root, "var/lib/kubelet/pki");
  const pem = readFileSync(join(dir, readlinkSync(join(dir, file))), "utf8");
  return splitPemCertificates(pem)[0]!;
}

test("step-ca templates that use the token's sans: the kubelet client certificate carries URI:system:node:w1, and join accepts it", async () => {
  const root = tempRoot();
  const args = stepWorkerJoin(root, ca, {
    "ca-provisioner": "workers",
    "ca-password-file": ca.provisioners[0]!.passwordFile,
    "dns-name": "w1.lab",
  });
  const r = await runCli(args);
  assert.equal(r.code, 0, r.stderr);
  const client = installed(root, "kubelet-client-current.pem");
  const text = (await import("node:child_process"))
    .execFileSync("openssl", ["x509", "-noout", "-ext", "subjectAltName"], { input: client })
    .toString();
  assert.match(text, /URI:system:node:w1/, "step-ca put the token's sans in");
  assert.deepEqual(opensslInfo(client).dns, []);
  const server = opensslInfo(installed(root, "kubelet-server-current.pem"));
  assert.deepEqual(server.dns.sort(), ["w1", "w1.lab"]);
  assert.deepEqual(server.ips, ["10.0.0.21"]);

  // The template check of installed certificates, given what a step-ca is asked for, keeps it.
  const template = templateFor(findKind("kubelet-client")!, {
    node: { nodeName: "w1", ips: ["10.0.0.21"], dnsNames: ["w1.lab"] },
    apiServer: "https://10.0.0.1:6443",
  });
  const cert = parseCert(client);
  assert.equal(
    mismatch(cert, template, undefined, undefined, [], requestedSansFor("step-ca", template)),
    undefined,
  );
  assert.match(mismatch(cert, template, undefined, undefined) ?? "", /unrequested URI/);
});

test("step-ca templates that use the token's sans: renew with nothing due keeps the kubelet client certificate", async () => {
  const root = tempRoot();
  const join_ = await runCli(
    stepWorkerJoin(root, ca, {
      "ca-provisioner": "workers",
      "ca-password-file": ca.provisioners[0]!.passwordFile,
    }),
  );
  assert.equal(join_.code, 0, join_.stderr);
  const renew = await runCli(["renew", "--root", root]);
  assert.equal(renew.code, 0, renew.stderr);
  assert.match(renew.stdout, /^nothing to renew/, renew.stdout);
});
