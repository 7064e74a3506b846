// `node-join pin <file|->`: the pin of each certificate in a PEM file, as --ca-cert-hash takes it
// (kubeadm's: sha256 of the SubjectPublicKeyInfo, kubeadm's pubkeypin package), with its subject,
// validity and, for a root, step's fingerprint (`step certificate fingerprint`: sha256 of the DER),
// as --ca-fingerprint takes it. No openssl pipeline whose output differs between versions.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { UsageError } from "../common/errors.js";
import { loadPemFile } from "../ca/trust.js";
import { subjectLine } from "../pki/installed.js";
import {
  certFingerprint,
  certPin,
  parseCert,
  splitPemCertificates,
  type CertInfo,
} from "../pki/x509.js";
import { inspect } from "../store/fsio.js";
import { examples, type Cli } from "./context.js";
import { isoDate } from "./format.js";

const HELP = examples([
  "node-join pin /etc/kubernetes/pki/ca.crt",
  "cfssl info -remote http://ca:8888 | jq -r .certificate | node-join pin -",
]);

/** One certificate as pin and probe show it. */
export interface CertRow {
  subject: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  isCa: boolean;
  /** Self-signed: a root, whose fingerprint step-ca's --ca-fingerprint takes. */
  root: boolean;
  /** sha256:<hex> of the SubjectPublicKeyInfo: --ca-cert-hash. */
  pin: string;
  /** hex sha256 of the DER: step's fingerprint, --ca-fingerprint for a root. */
  fingerprint: string;
}

function selfSigned(c: CertInfo): boolean {
  try {
    return c.node.verify(c.node.publicKey);
  } catch {
    return false;
  }
}

export function certRow(c: CertInfo): CertRow {
  const issuer = c.node.issuer.split("\n").reverse().join(",");
  const subject = subjectLine(c);
  return {
    subject,
    issuer,
    notBefore: isoDate(c.notBefore),
    notAfter: isoDate(c.notAfter),
    isCa: c.isCa,
    root: subject === issuer && selfSigned(c),
    pin: certPin(c),
    fingerprint: certFingerprint(c),
  };
}

/** The rows as text: a header line each, then its validity, pin and, for a root, fingerprint. */
export function formatCertRows(rows: readonly CertRow[], indent = ""): string {
  return rows
    .map((r, i) => {
      const kind = r.root ? "root CA" : r.isCa ? "CA" : "certificate";
      return [
        `${indent}${i + 1}. ${r.subject} (${kind}${r.root ? "" : `, issued by ${r.issuer}`})`,
        `${indent}   valid:       ${r.notBefore} to ${r.notAfter}`,
        `${indent}   pin:         ${r.pin}`,
        ...(r.root ? [`${indent}   fingerprint: ${r.fingerprint}`] : []),
      ].join("\n");
    })
    .join("\n");
}

/** The certificates of `file`, or of stdin for "-"; a file that is not there is named (exit 2). */
function readCertificates(file: string): CertInfo[] {
  if (file !== "-") {
    if (inspect(file).kind === "missing")
      throw new UsageError(`certificate file ${file} does not exist`);
    return loadPemFile(file, "certificate file");
  }
  try {
    return splitPemCertificates(readFileSync(0, "utf8"), "standard input").map(parseCert);
  } catch (err) {
    throw new UsageError(`standard input: ${(err as Error).message}`);
  }
}

export function registerPin(program: Command, cli: Cli): void {
  program
    .command("pin")
    .description("print the pin (--ca-cert-hash) of each certificate in a PEM file")
    .argument("<file>", "a PEM file of certificates, or - for standard input")
    .option("--json", "print a machine-readable result on stdout")
    .addHelpText("after", HELP)
    .action((file: string, opts: { json?: boolean }) => {
      const rows = readCertificates(file).map(certRow);
      cli.setResult({
        json: Boolean(opts.json),
        value: { ok: true, command: "pin", file, certificates: rows },
        text: `${formatCertRows(rows)}\n`,
      });
    });
}
