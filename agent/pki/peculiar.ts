// @peculiar/x509, with reflect-metadata, tsyringe and its asn1 tree, costs about a quarter of a
// `renew` with nothing due just to load. Only building or reading CSRs needs it, so it is loaded
// on first use; certificates are parsed with node:crypto (agent/x509.ts).
import { webcrypto } from "node:crypto";
import type * as X509 from "@peculiar/x509";

export type { X509 };

let loaded: Promise<typeof X509> | undefined;

export function peculiar(): Promise<typeof X509> {
  return (loaded ??= (async () => {
    await import("reflect-metadata"); // tsyringe inside @peculiar/x509 needs it first
    const x509 = await import("@peculiar/x509");
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  })());
}
