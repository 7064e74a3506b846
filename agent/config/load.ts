// What every command does first: find its root, read the config, merge the sources.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { ioError, UsageError } from "../common/errors.js";
import { layout, underRoot, type Layout } from "../store/layout.js";
import { optionByKey } from "./options.js";
import { toSettings, type Settings } from "./settings.js";
import { envValues, flagValues, mergeValues, parseConfigText, type RawValues } from "./sources.js";

export interface GlobalOptions {
  root?: string;
  config?: string;
  json?: boolean;
  dryRun?: boolean;
}

export interface Loaded {
  layout: Layout;
  settings: Settings;
  /** The merged values without defaults: what join persists. */
  values: RawValues;
  /** The config file that was read, if any. */
  configFile?: string;
}

export function loadSettings(
  opts: GlobalOptions & Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): Loaded {
  const root = resolve(opts.root ?? "/");
  const l = layout(root);
  const explicit = opts.config !== undefined;
  const file = explicit ? resolve(opts.config!) : l.configFile;
  let fromFile: RawValues = new Map();
  if (existsSync(file)) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw ioError("read config", file, err);
    }
    fromFile = parseConfigText(text, file);
    // The persisted config names host paths; under --root they live below the root.
    for (const [k, v] of fromFile) {
      if (typeof v === "string" && optionByKey(k)?.path)
        fromFile.set(k, underRoot(v, root, existsSync));
    }
  } else if (explicit) {
    throw new UsageError(`--config ${file}: no such file`);
  }
  const values = mergeValues(fromFile, envValues(env), flagValues(opts));
  return {
    layout: l,
    settings: toSettings(values, root),
    values,
    ...(existsSync(file) ? { configFile: file } : {}),
  };
}
