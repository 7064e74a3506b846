// A CA's settings seen as its backend's, after checking that its type is that backend's: tests
// read a backend's own fields (ca/cfssl-settings.ts, ca/stepca-settings.ts) through these.
import assert from "node:assert/strict";
import type { CfsslSettings } from "../../agent/ca/cfssl-settings.js";
import type { CaSettings } from "../../agent/ca/index.js";
import type { StepCaSettings } from "../../agent/ca/stepca-settings.js";

export function cfsslOf(c: CaSettings): CfsslSettings {
  assert.equal(c.type, "cfssl");
  return c as CfsslSettings;
}

export function stepCaOf(c: CaSettings): StepCaSettings {
  assert.equal(c.type, "step-ca");
  return c as StepCaSettings;
}
