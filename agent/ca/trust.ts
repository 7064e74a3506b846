// Decides whether the CA certificate a server sent may be trusted: kubeadm-style SPKI pins, a CA
// file from the operator, or (only when asked for explicitly) nothing.
import { UsageError, VerificationError } from "../common/errors.js";
import { caSetting, type CaDescriptor } from "../pki/cas.js";
import { inspect } from "../store/fsio.js";
import { readExistingFile } from "../store/safe-read.js";
import type { CommonCaSettings } from "./backend.js";
import {
  buildChain,
  certFingerprint,
  certPin,
  issuedBy,
  parseCert,
  splitPemCertificates,
  type CertInfo,
} from "../pki/x509.js";

export function loadPemFile(file: string, what: string): CertInfo[] {
  // The operator's file, a link to it allowed; a FIFO there is refused rather than waited on.
  const text = readExistingFile(file, { follow: true, what }).toString("utf8");
  try {
    return splitPemCertificates(text, `${what} ${file}`).map(parseCert);
  } catch (err) {
    throw new UsageError(`${what} ${file}: ${(err as Error).message}`);
  }
}

/** "--etcd-ca-file, config cas.etcd.caFile": how a message names a CA's setting. */
export function caSettingName(ca: CaDescriptor, flag: string, setting: string): string {
  return `--${ca.flagPrefix}${flag}, config cas.${ca.name}.${setting}`;
}

/** A file a CA's setting names that is not there: the operator's mistake (exit 2), named. */
export function missingFileError(
  ca: CaDescriptor,
  what: string,
  file: string,
  name: string,
): UsageError {
  return new UsageError(`CA ${ca.display}: ${what} ${file} does not exist (${name})`);
}

/**
 * The CA file and the TLS bundle a CA's settings name, checked before the CA is contacted: present
 * and holding certificates (the TLS bundle only where it is used, for an https:// URL).
 */
export function checkTrustFiles(ca: CaDescriptor, settings: CommonCaSettings): void {
  const files = [
    { file: settings.caFile, what: "CA file", flag: "ca-file", setting: "caFile" },
    {
      file: settings.urls.some((u) => u.startsWith("https:")) ? settings.tlsCaFile : undefined,
      what: "CA TLS bundle",
      flag: "ca-tls-file",
      setting: "tlsCaFile",
    },
  ];
  for (const f of files) {
    if (!f.file) continue;
    if (inspect(f.file).kind === "missing")
      throw missingFileError(ca, f.what, f.file, caSettingName(ca, f.flag, f.setting));
    loadPemFile(f.file, f.what);
  }
}

/**
 * Returns the trust anchors for a CA given what its server sent. Throws VerificationError when the
 * sent certificates match no pin and do not chain to the CA file.
 */
export function authenticateCa(
  ca: CaDescriptor,
  fetched: CertInfo[],
  settings: CommonCaSettings,
  unsafe: boolean,
  description: string,
  warn: (line: string) => void,
  pinned: CertInfo[] = [],
): CertInfo[] {
  if (settings.fingerprint) {
    const matching = fetched.filter((c) => certFingerprint(c) === settings.fingerprint);
    if (matching.length === 0) {
      const got = fetched.map(certFingerprint).join(", ");
      throw new VerificationError(
        `${description}: root fingerprint ${got} is not ${settings.fingerprint}, the ${caSetting(ca, "ca-fingerprint", "fingerprint")}; refusing to trust it`,
      );
    }
    // A pin or CA file given as well must agree; alone, the fingerprint is the anchor.
    if (!settings.caFile && settings.certHashes.length === 0) return matching;
    fetched = matching;
  }
  if (settings.caFile) {
    const anchors = loadPemFile(settings.caFile, "CA file");
    for (const c of fetched) {
      if (!buildChain(c, [], anchors)) {
        throw new VerificationError(
          `${description}: the CA certificate it sent ("${c.commonName}") is not in and does not chain to CA file ${settings.caFile}, the ${caSetting(ca, "ca-file", "caFile")}`,
        );
      }
    }
    return anchors;
  }
  if (settings.certHashes.length > 0) {
    // A CA certificate that a pinned one signed (a new key cross-signed by the old CA, as a CFSSL
    // serving `-ca cross-signed.pem` sends it) is trusted by that signature; it stays trusted
    // after the old CA retires only if its own key is pinned too (README "CA rotation").
    const crossSigned = (c: CertInfo): boolean =>
      c.isCa && pinned.some((p) => !p.der.equals(c.der) && issuedBy(c, p));
    const matching = fetched.filter(
      (c) => settings.certHashes.includes(certPin(c)) || crossSigned(c),
    );
    if (matching.length === 0) {
      const got = fetched.map(certPin).join(", ");
      throw new VerificationError(
        `${description}: CA certificate pin ${got} matches no ${caSetting(ca, "ca-cert-hash", "certHashes")}; refusing to trust it${pinned.length > 0 ? rotatedHint(ca) : ""}`,
      );
    }
    return matching;
  }
  if (unsafe) {
    warn(
      `WARNING: ${description}: trusting its CA certificate without verification (--unsafe-skip-ca-verification)`,
    );
    return fetched;
  }
  throw new UsageError(
    `${description}: no CA trust configured: give ${caSetting(ca, "ca-cert-hash", "certHashes")}, ${caSetting(ca, "ca-fingerprint", "fingerprint")} or ${caSetting(ca, "ca-file", "caFile")} (or --unsafe-skip-ca-verification)`,
  );
}

/**
 * A node that holds a pinned certificate of this CA, and is sent another: the CA was rotated (or
 * replaced) and this node skipped phase 1 (README "CA rotation"). Never the pin it was sent: that
 * is to be compared out of band first (node-join probe).
 */
function rotatedHint(ca: CaDescriptor): string {
  return ` (if the CA was rotated, trust its new certificate first: node-join trust add --ca ${ca.display} --ca-file <new CA certificate>, its pin compared out of band with node-join probe)`;
}

/** Whether the operator named an anchor (pin, fingerprint or CA file) for this CA. */
export function trustConfigured(
  settings: Pick<CommonCaSettings, "caFile" | "certHashes" | "fingerprint">,
): boolean {
  return Boolean(settings.caFile || settings.certHashes.length > 0 || settings.fingerprint);
}

/**
 * PEM text of the anchors as the TLS trust for the CA server (a separate bundle when configured).
 */
export function tlsTrustFor(settings: CommonCaSettings, anchors: CertInfo[]): string[] {
  if (settings.tlsCaFile) return loadPemFile(settings.tlsCaFile, "CA TLS bundle").map((c) => c.pem);
  return anchors.map((c) => c.pem);
}

/** The anchors a CA's settings can name (kubeadm's pins, step's fingerprint, a CA file). */
export type TrustAnchors = Pick<CommonCaSettings, "certHashes" | "fingerprint" | "caFile">;

/** Which of a CA's settings names a CA certificate as an anchor. */
export type AnchorSource = "certHashes" | "fingerprint" | "caFile";

/**
 * The one pin rule, for the bundle (trustedBundle) and for status alike: which of the operator's
 * settings names this CA certificate as trusted, or undefined. Its key's pin is one of certHashes
 * (kubeadm's SPKI pin, so a CA certificate re-issued or cross-signed for the same key matches
 * too), its DER is the step-ca fingerprint's, or it is one of the CA file's certificates: as
 * kubeadm's --discovery-file and the kubelet's --client-ca-file, the file's certificates are the
 * anchors themselves; a certificate that only chains to one of them is not one (it needs its own
 * pin, as a cross-signed new CA does once the old one retires).
 */
export function anchorOf(
  settings: TrustAnchors,
  cert: CertInfo,
  caFileCerts: CertInfo[],
): AnchorSource | undefined {
  if (settings.certHashes.includes(certPin(cert))) return "certHashes";
  if (settings.fingerprint !== undefined && certFingerprint(cert) === settings.fingerprint)
    return "fingerprint";
  if (caFileCerts.some((c) => c.der.equals(cert.der))) return "caFile";
  return undefined;
}

/**
 * For a cross-signed CA certificate (sent by the server, or in the installed bundle), the node's
 * pinned self-signed certificate of the same subject and key, if it holds one: what a bundle
 * should hold, since OpenSSL (unlike Go) wants a self-signed anchor and may pick the cross-signed
 * one by subject and then miss its issuer once the old CA is gone. Otherwise the certificate.
 */
function selfSignedTwin(c: CertInfo, pinned: CertInfo[]): CertInfo {
  if (c.node.subject === c.node.issuer) return c;
  return (
    pinned.find(
      (k) =>
        k.node.subject === c.node.subject &&
        k.node.issuer === k.node.subject &&
        k.spki.equals(c.spki),
    ) ?? c
  );
}

/**
 * A CA's trusted bundle, what ca.crt (and the kubeconfigs' certificate-authority-data) hold during
 * a rotation's overlap (after Talos' "accepted CAs", siderolabs/talos#8440): the certificates the
 * CA server sent and authenticateCa() accepted, first (the current signer, as the server names
 * it; a cross-signed one replaced by its self-signed twin wherever the node holds it pinned), then
 * every other certificate the node already holds (the installed bundle) that a pin still names,
 * each once. A certificate in the installed file that no pin names is dropped: removing its
 * pin retires a CA, and a file someone else edited adds no trust. Without any anchor configured
 * (join's trust on first use) the bundle is what the server sent.
 */
export function trustedBundle(
  settings: CommonCaSettings,
  fetched: CertInfo[],
  known: CertInfo[],
): CertInfo[] {
  const caFileCerts = settings.caFile ? loadPemFile(settings.caFile, "CA file") : [];
  const pinnedKnown = known.filter((k) => anchorOf(settings, k, caFileCerts) !== undefined);
  const out: CertInfo[] = [];
  for (const c of [...fetched, ...pinnedKnown].map((f) => selfSignedTwin(f, pinnedKnown)))
    if (!out.some((o) => o.der.equals(c.der))) out.push(c);
  return out;
}
