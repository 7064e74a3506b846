// The registry of CA backends: adding a CA type means one new file and one line here.
import { UsageError } from "../common/errors.js";
import type { BackendContext, BackendFactory, CaBackend } from "./backend.js";
import { createCfsslBackend } from "./cfssl.js";
import { createStepCaBackend } from "./stepca.js";

/** The CA types, as --ca-type and the config key cas.<ca>.type take them. */
export const CA_TYPES = ["cfssl", "step-ca"] as const;
export type CaType = (typeof CA_TYPES)[number];

export const BACKENDS: Record<CaType, BackendFactory> = {
  cfssl: createCfsslBackend,
  "step-ca": createStepCaBackend,
};

export function createBackend(ctx: BackendContext): CaBackend {
  const factory = (BACKENDS as Record<string, BackendFactory | undefined>)[ctx.settings.type];
  if (!factory) {
    throw new UsageError(
      `CA ${ctx.ca.display}: unknown CA type "${ctx.settings.type}" (known: ${Object.keys(BACKENDS).join(", ")})`,
    );
  }
  return factory(ctx);
}
