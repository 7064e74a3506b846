// What a CA server serves, fetched trusting nothing (`node-join probe`): the certificates its API
// hands any client and, over https, the TLS chain it presents. Read-only and unauthenticated: a
// probe sends no secret and no CSR. Each backend's probe (cfssl.ts, stepca/client.ts) asks its own
// API once; this file holds what they share.
import { CaUnreachableError } from "../common/errors.js";
import { derToPem, parseCert, type CertInfo } from "../pki/x509.js";
import { baseUrl } from "./common.js";
import { httpRequest, type HttpRequest, type HttpResponse } from "./http.js";
import { TransientError } from "./retry.js";

export interface ProbeRequest {
  url: string;
  /** CFSSL's signer label (cfssl serve's multiroot), else the default signer. */
  label?: string;
  timeoutMs: number;
}

export interface Probed {
  /** The CA certificates its API served (CFSSL info, step-ca /roots). */
  served: CertInfo[];
  /** https: the certificates the server's TLS handshake presented, the server's own first. */
  tls: CertInfo[];
}

/**
 * One unverified request (no retry: a probe is run by a person, who sees the failure at once).
 * A failure to connect is "unreachable" (exit 3), as a join's final one.
 */
export async function probeRequest(
  p: ProbeRequest,
  what: string,
  path: string,
  method: HttpRequest["method"],
  body?: string,
): Promise<HttpResponse> {
  try {
    return await httpRequest({
      method,
      url: `${baseUrl(p.url)}${path}`,
      ...(body !== undefined ? { body } : {}),
      timeoutMs: p.timeoutMs,
      // Unverified on purpose: the point is to show what it serves, to be compared out of band.
      tls: undefined,
      what,
    });
  } catch (err) {
    if (err instanceof TransientError)
      throw new CaUnreachableError(`${what}: unreachable (${err.message})`);
    throw err;
  }
}

/**
 * The certificate chain a TLS server presents at `url` (node:tls getPeerCertificate(true)),
 * unverified; empty for http://. The whole chain, not only the issuer HttpResponse tells.
 */
export async function tlsChain(url: string, timeoutMs: number, what: string): Promise<CertInfo[]> {
  const u = new URL(url);
  if (u.protocol !== "https:") return [];
  const tls = process.getBuiltinModule("node:tls");
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port: Number(u.port || 443),
      rejectUnauthorized: false,
      // SNI is for names only (RFC 6066 3): not sent for an IP address.
      ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
    });
    const fail = (err: Error) => {
      socket.destroy();
      reject(new CaUnreachableError(`${what}: TLS handshake failed (${err.message})`));
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no handshake within ${timeoutMs / 1000}s`)));
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      const chain: CertInfo[] = [];
      let peer = socket.getPeerCertificate(true);
      while (peer?.raw && !chain.some((c) => c.der.equals(peer.raw))) {
        chain.push(parseCert(derToPem(peer.raw)));
        peer = peer.issuerCertificate;
      }
      socket.end();
      resolve(chain);
    });
  });
}
