// Prints the README's flag and config-key tables from the options table (agent/config/options.ts).
import { ALL_OPTIONS as OPTIONS, envName } from "../agent/config/options.js";

const rows = OPTIONS.map((o) => {
  const flag = o.flag
    ? `\`--${o.flag}${o.type === "bool" ? "" : ` <${o.valueName ?? "value"}>`}\`${o.type === "list" ? " (repeatable)" : ""}`
    : "";
  const env = o.flag ? `\`${envName(o.flag)}\`` : "";
  return `| \`${o.key}\` | ${flag} | ${env} | ${o.description}${o.choices ? ` (${o.choices.join(", ")})` : ""} |`;
});
console.log("| config key | flag | environment | meaning |\n|---|---|---|---|\n" + rows.join("\n"));
