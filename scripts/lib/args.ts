// node-join command lines written as flag: value pairs, and the standard joins that the end-to-end
// tests, `npm run demo` and `npm run bench` run against throwaway CFSSL CAs (scripts/lib/cfssl.ts).
// A developer tool like cfssl.ts: tests import it, the agent never does. Only node: built-ins.
import { join } from "node:path";

/**
 * Flags by name (without the dashes), in order: a string is `--name value`, an array repeats
 * `--name value` for each value, true is a bare `--name`, undefined leaves the flag out.
 */
export type Flags = Record<string, string | readonly string[] | true | undefined>;

/**
 * The arguments of `spec`, in its order: `{ root, ip: ["a", "b"], force: true }` is
 * `["--root", root, "--ip", "a", "--ip", "b", "--force"]`.
 */
export function flags(spec: Flags): string[] {
  return Object.entries(spec).flatMap(([name, value]) => {
    if (value === undefined) return [];
    if (value === true) return [`--${name}`];
    return (typeof value === "string" ? [value] : value).flatMap((v) => [`--${name}`, v]);
  });
}

/**
 * A CFSSL CA as a join names it: where it answers and the pin of its certificate (a CfsslCa, or a
 * proxy in front of one with that CA's pin).
 */
export interface CfsslEndpoint {
  url: string;
  pin: string;
}

/** The API server of the test joins (nothing listens there: a join does not call it). */
export const TEST_API_SERVER = "https://10.0.0.1:6443";

/**
 * One CFSSL CA: `--<prefix>ca-url`, `--<prefix>ca-cert-hash`, `--<prefix>ca-auth-key-file` (prefix
 * "" for the cluster CA, "front-proxy-" or "etcd-"); no auth key file flag when it is undefined.
 */
export function cfsslCaFlags(
  ca: CfsslEndpoint,
  authKeyFile: string | undefined,
  prefix = "",
): Flags {
  return {
    [`${prefix}ca-url`]: ca.url,
    [`${prefix}ca-cert-hash`]: ca.pin,
    [`${prefix}ca-auth-key-file`]: authKeyFile,
  };
}

/**
 * The flags of the standard worker join against a CFSSL test CA, what follows `join --root <root>`:
 *   --api-server https://10.0.0.1:6443 --ca-url <url> --ca-cert-hash <pin>
 *   [--ca-auth-key-file <file>] --client-profile client --serving-profile serving
 *   --node-name w1 --ip 10.0.0.21
 * `more` gives any of these flags another value where it stands (undefined drops it; the auth key
 * file is left out unless `more` names it), and adds every other flag after them, in its order.
 */
export function cfsslWorkerFlags(ca: CfsslEndpoint, more: Flags = {}): string[] {
  return flags({
    "api-server": TEST_API_SERVER,
    ...cfsslCaFlags(ca, undefined),
    "client-profile": "client",
    "serving-profile": "serving",
    "node-name": "w1",
    ip: "10.0.0.21",
    ...more,
  });
}

/** `join --root <root>` and the standard worker join's flags (cfsslWorkerFlags). */
export function cfsslWorkerJoin(root: string, ca: CfsslEndpoint, more: Flags = {}): string[] {
  return ["join", "--root", root, ...cfsslWorkerFlags(ca, more)];
}

/** The flags of a control-plane join of node `name` at `ip`, behind the endpoint cp.lab:6443. */
export function controlPlaneNodeFlags(name: string, ip: string): Flags {
  return {
    role: "control-plane",
    "node-name": name,
    ip,
    "advertise-address": ip,
    "control-plane-endpoint": "cp.lab:6443",
  };
}

/** The three CAs of a control plane. */
export interface ClusterCas<T> {
  kubernetes: T;
  frontProxy: T;
  etcd: T;
}

/** The auth key file of each CFSSL CA of a control plane, in its root's etc/node-join. */
export const CONTROL_PLANE_AUTH_KEYS: ClusterCas<string> = {
  kubernetes: "kubernetes-ca.key",
  frontProxy: "front-proxy-ca.key",
  etcd: "etcd-ca.key",
};

/**
 * The CA flags of a control-plane join against three CFSSL CAs whose auth keys lie in `etc`
 * (CONTROL_PLANE_AUTH_KEYS): the kubernetes CA with its client, serving and peer profiles, then the
 * front-proxy and the etcd CA.
 */
export function cfsslControlPlaneCaFlags(cas: ClusterCas<CfsslEndpoint>, etc: string): Flags {
  const keys = CONTROL_PLANE_AUTH_KEYS;
  return {
    ...cfsslCaFlags(cas.kubernetes, join(etc, keys.kubernetes)),
    "client-profile": "client",
    "serving-profile": "serving",
    "peer-profile": "peer",
    ...cfsslCaFlags(cas.frontProxy, join(etc, keys.frontProxy), "front-proxy-"),
    ...cfsslCaFlags(cas.etcd, join(etc, keys.etcd), "etcd-"),
  };
}

/**
 * `join --root <root>` of control plane `name` at `ip` (controlPlaneNodeFlags) against three CFSSL
 * CAs whose auth keys lie in <root>/etc/node-join (installControlPlaneSecrets); `more` after them.
 */
export function cfsslControlPlaneJoin(
  root: string,
  name: string,
  ip: string,
  cas: ClusterCas<CfsslEndpoint>,
  more: Flags = {},
): string[] {
  return [
    "join",
    ...flags({
      root,
      ...controlPlaneNodeFlags(name, ip),
      ...cfsslControlPlaneCaFlags(cas, join(root, "etc/node-join")),
      ...more,
    }),
  ];
}
