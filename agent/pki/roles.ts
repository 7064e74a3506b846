// The roles a node joins as; every certificate kind and CA names the roles that need it.
export const ROLES = ["worker", "control-plane"] as const;
export type Role = (typeof ROLES)[number];
