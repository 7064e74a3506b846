// The throwaway CFSSL CA on loopback lives with the developer tools (scripts/lib/cfssl.ts); the
// fixtures below are what test files share on top of it: one CA per file, a node's root with the
// CA's auth key, and the worker join most files start from.
import { cfsslWorkerJoin, type Flags } from "../../scripts/lib/args.js";
import { startCfssl, type CfsslCa, type CfsslOptions } from "../../scripts/lib/cfssl.js";
import { shared } from "./fixture.js";
import { tempRoot } from "./fs.js";

export * from "../../scripts/lib/cfssl.js";

/** A real `cfssl serve` for the whole test file (started before its tests, stopped after). */
export function useCfssl(opts: CfsslOptions = {}): CfsslCa {
  return shared(
    () => startCfssl(opts),
    (ca) => ca.stop(),
  );
}

/** A host root with `ca`'s auth key installed where a node keeps it: a node about to join. */
export function nodeRoot(
  ca: Pick<CfsslCa, "installAuthKey">,
  prefix?: string,
): { root: string; keyFile: string } {
  const root = tempRoot(prefix);
  return { root, keyFile: ca.installAuthKey(root) };
}

/**
 * The join of worker w1 (10.0.0.21, 2001:db8::21, w1.lab) into `root` through the CFSSL server at
 * `ca.url` (the CA itself or a proxy in front of it), then `extra`.
 */
export function w1JoinArgs(
  ca: { url: string; pin: string },
  root: string,
  keyFile: string,
  extra: string[] = [],
  more: Flags = {},
): string[] {
  return [
    ...cfsslWorkerJoin(root, ca, {
      "ca-auth-key-file": keyFile,
      ip: ["10.0.0.21", "2001:db8::21"],
      "dns-name": "w1.lab",
      ...more,
    }),
    ...extra,
  ];
}
