// Replaced at bundle time (packaging/build.mjs); under tsx the package.json version is read
// instead.
declare const __NODE_JOIN_VERSION__: string | undefined;
/** ISO 8601: packaging/build.mjs takes SOURCE_DATE_EPOCH (reproducible builds), else now. */
declare const __NODE_JOIN_BUILD_TIME__: string | undefined;

/**
 * Under tsx (unit tests, a run from the sources): a date this source cannot run before, kept a
 * little before the change that introduced it, so no test clock of today falls under it.
 */
const SOURCE_FLOOR = "2026-11-01T00:00:00Z";

/**
 * When this binary was built: the host's clock cannot be earlier on a host that runs it
 * (engine/clock.ts clockFloor).
 */
export function buildTime(): Date {
  if (typeof __NODE_JOIN_BUILD_TIME__ === "string") return new Date(__NODE_JOIN_BUILD_TIME__);
  return new Date(SOURCE_FLOOR);
}

export function agentVersion(): string {
  if (typeof __NODE_JOIN_VERSION__ === "string") return __NODE_JOIN_VERSION__;
  return "0.0.0-dev";
}

export function versionLine(): string {
  return `node-join ${agentVersion()} (node ${process.version}, ${process.platform}/${process.arch})`;
}
