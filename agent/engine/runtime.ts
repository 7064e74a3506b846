// What a run receives from outside: where it writes, its environment, clock and log, and the seams
// tests use (a fake CA backend, crash points in the install transaction). Production code reads
// nothing else from the process.
import type { BackendContext, CaBackend } from "../ca/backend.js";
import { createBackend, type CaSettings } from "../ca/index.js";
import type { Clock } from "../common/clock.js";
import type { Layout } from "../store/layout.js";
import type { CrashPoint } from "../store/transaction.js";
import type { Tpm } from "../tpm/tpm.js";

export interface Runtime {
  layout: Layout;
  env: NodeJS.ProcessEnv;
  clock: Clock;
  /** Progress and warnings (stderr); never secrets. */
  log: (line: string) => void;
  /** Builds a CA's backend; default: the registry (ca/index.ts). */
  backend?: (ctx: BackendContext<CaSettings>) => CaBackend;
  /** Steps of the install transaction where a test stops the run; default: none. */
  crashPoint?: CrashPoint;
  /** The TPM at a TCTI; default: tpm2-tools (tpm/tpm.ts createTpm). */
  tpm?: (tcti: string) => Tpm;
}

export function backendFor(rt: Runtime, ctx: BackendContext<CaSettings>): CaBackend {
  return (rt.backend ?? createBackend)(ctx);
}
