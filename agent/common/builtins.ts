// Node builtins loaded when first used rather than at start. node:child_process pulls in net, dgram
// and more, a few milliseconds of every start, and only hooks and the timer commands run programs.
import type * as ChildProcess from "node:child_process";
import type * as Net from "node:net";
import type * as Readline from "node:readline/promises";

type GetBuiltin = (id: string) => unknown;
// process.getBuiltinModule: Node >= 20.16 (package.json engines asks for 20.18.1); not in
// @types/node 20.
const getBuiltin = (id: string): unknown =>
  (process as unknown as { getBuiltinModule: GetBuiltin }).getBuiltinModule(id);

export const childProcess = (): typeof ChildProcess =>
  getBuiltin("node:child_process") as typeof ChildProcess;

declare const secretFree: unique symbol;

/**
 * An environment without node-join's secrets, made only by envWithoutSecrets (ca/secrets.ts; the
 * registry's withoutSecrets in ca/index.ts names every backend's secret variables): all that a
 * program run on the operator's behalf (a hook) is given.
 */
export type SecretFreeEnv = Readonly<NodeJS.ProcessEnv> & { readonly [secretFree]: true };

/** node:net: only a request through a proxy's CONNECT tunnel opens a socket itself. */
export const net = (): typeof Net => getBuiltin("node:net") as typeof Net;

/** node:readline/promises: only leave's question on a terminal reads a line. */
export const readline = (): typeof Readline =>
  getBuiltin("node:readline/promises") as typeof Readline;

/** True inside the single binary (a Node single executable application). */
export function isSea(): boolean {
  try {
    return (getBuiltin("node:sea") as { isSea?: () => boolean } | undefined)?.isSea?.() ?? false;
  } catch {
    return false; // a Node without node:sea
  }
}
