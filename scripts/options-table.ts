// Prints the settings table (config key, flag, environment variable) as docs/cli.md holds it.
import { settingsTable } from "./lib/cli-markdown.js";

console.log(settingsTable());
