// Builds the PKCS#10 request for one certificate kind with the node's own key.
import type { CertTemplate } from "./certs.js";
import { signingAlgorithm, toWebCrypto, type NodeKey } from "./keys.js";
import { peculiar, type X509 } from "./peculiar.js";
import { EKU_OIDS } from "./x509.js";

export async function buildCsr(template: CertTemplate, key: NodeKey): Promise<string> {
  const x509 = await peculiar();
  const keys = await toWebCrypto(key);
  const name: X509.JsonName = [];
  for (const o of template.organizations) name.push({ O: [o] });
  name.push({ CN: [template.commonName] });
  const extensions: X509.Extension[] = [];
  const altNames = [
    ...template.sans.dnsNames.map((value) => ({ type: "dns" as const, value })),
    ...template.sans.ips.map((value) => ({ type: "ip" as const, value })),
  ];
  if (altNames.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(altNames));
  let usages = x509.KeyUsageFlags.digitalSignature;
  // keyEncipherment only means something for RSA keys (kubeadm sets it for RSA).
  if (key.algorithm.startsWith("rsa")) usages |= x509.KeyUsageFlags.keyEncipherment;
  extensions.push(new x509.KeyUsagesExtension(usages, true));
  extensions.push(new x509.ExtendedKeyUsageExtension(template.usages.map((u) => EKU_OIDS[u])));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: new x509.Name(name),
    keys,
    signingAlgorithm: signingAlgorithm(key.algorithm),
    extensions,
  });
  return csr.toString("pem") + "\n";
}

export interface CsrInfo {
  commonName: string;
  organizations: string[];
  dnsNames: string[];
  ips: string[];
  spki: Buffer;
  signatureValid: boolean;
}

/** Reads back a CSR (tests and --dry-run). */
export async function parseCsr(pem: string): Promise<CsrInfo> {
  const x509 = await peculiar();
  const csr = new x509.Pkcs10CertificateRequest(pem);
  const san = csr.extensions.find(
    (e): e is X509.SubjectAlternativeNameExtension =>
      e instanceof x509.SubjectAlternativeNameExtension,
  );
  const names = san?.names.items ?? [];
  return {
    commonName: csr.subjectName.getField("CN")[0] ?? "",
    organizations: csr.subjectName.getField("O"),
    dnsNames: names.filter((n) => n.type === "dns").map((n) => n.value),
    ips: names.filter((n) => n.type === "ip").map((n) => n.value),
    spki: Buffer.from(csr.publicKey.rawData),
    signatureValid: await csr.verify(),
  };
}
