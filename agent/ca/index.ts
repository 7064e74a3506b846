// The registry of CA backends: adding a CA type means one new file and one entry here.
import { UsageError } from "../common/errors.js";
import type { CertTemplate } from "../pki/certs.js";
import type { RequestedSans } from "../pki/verify.js";
import type { BackendContext, BackendFactory, CaBackend } from "./backend.js";
import { createCfsslBackend } from "./cfssl.js";
import { createStepCaBackend, stepCaRequestedSans } from "./stepca.js";

export interface BackendType {
  create: BackendFactory;
  /**
   * The SAN sets a CA of this type is asked for when node-join requests `template`, known without
   * reaching it (the template check of installed certificates needs them); default: the
   * template's own.
   */
  requestedSans?: (template: CertTemplate) => RequestedSans[];
}

/** The CA types, as --ca-type and the config key cas.<ca>.type take them. */
export const CA_TYPES = ["cfssl", "step-ca"] as const;
export type CaType = (typeof CA_TYPES)[number];

export const BACKENDS: Record<CaType, BackendType> = {
  cfssl: { create: createCfsslBackend },
  "step-ca": { create: createStepCaBackend, requestedSans: stepCaRequestedSans },
};

function backendType(type: string): BackendType | undefined {
  return (BACKENDS as Record<string, BackendType | undefined>)[type];
}

export function createBackend(ctx: BackendContext): CaBackend {
  const t = backendType(ctx.settings.type);
  if (!t) {
    throw new UsageError(
      `CA ${ctx.ca.display}: unknown CA type "${ctx.settings.type}" (known: ${Object.keys(BACKENDS).join(", ")})`,
    );
  }
  return t.create(ctx);
}

export function requestedSansFor(type: string, template: CertTemplate): RequestedSans[] {
  return backendType(type)?.requestedSans?.(template) ?? [template.sans];
}
