// Replaced at bundle time (packaging/build.mjs); under tsx the package.json version is read
// instead.
declare const __NODE_JOIN_VERSION__: string | undefined;

export function agentVersion(): string {
  if (typeof __NODE_JOIN_VERSION__ === "string") return __NODE_JOIN_VERSION__;
  return "0.0.0-dev";
}

export function versionLine(): string {
  return `node-join ${agentVersion()} (node ${process.version}, ${process.platform}/${process.arch})`;
}
