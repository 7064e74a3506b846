// The registry of CA backends: adding a CA type means one new file and one line here.
import { CA_DISPLAY } from "../pki/certs.js";
import { UsageError } from "../common/errors.js";
import type { BackendContext, BackendFactory, CaBackend } from "./backend.js";
import { createCfsslBackend } from "./cfssl.js";
import { createStepCaBackend } from "./stepca.js";

export const BACKENDS: Record<string, BackendFactory> = {
  cfssl: createCfsslBackend,
  "step-ca": createStepCaBackend,
};

export function createBackend(ctx: BackendContext): CaBackend {
  const factory = BACKENDS[ctx.settings.type];
  if (!factory) {
    throw new UsageError(`CA ${CA_DISPLAY[ctx.caName]}: unknown CA type "${ctx.settings.type}" (known: ${Object.keys(BACKENDS).join(", ")})`);
  }
  return factory(ctx);
}
