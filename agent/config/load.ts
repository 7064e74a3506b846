// What every command does first: find its root, read the config, merge the sources.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { standardProxyEnv, type StandardProxyEnv } from "../ca/proxy.js";
import { UsageError } from "../common/errors.js";
import { layout, rootDir, underRoot, type Layout } from "../store/layout.js";
import { readTrustedFile } from "../store/strict-modes.js";
import { envName, optionByKey, type OptionKey } from "./options.js";
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
  /**
   * The proxy settings that came from the standard variables (https_proxy, no_proxy...), where
   * neither a flag nor a NODE_JOIN_* variable overrode them: join persists them and says so.
   */
  fromStandardEnv: StandardProxyEnv;
}

export function loadSettings(
  opts: GlobalOptions & Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): Loaded {
  const root = rootDir(opts.root);
  const l = layout(root);
  const explicit = opts.config !== undefined;
  if (opts.config === "")
    throw new UsageError('--config "": an empty path names no file; give the config file');
  const file = explicit ? resolve(opts.config!) : l.configFile;
  let fromFile: RawValues = new Map();
  if (existsSync(file)) {
    // Its hooks run as root: a config another user may change is refused, not read.
    const text = readTrustedFile(file, "config file", "config").toString("utf8");
    fromFile = parseConfigText(text, file);
    // The persisted config names host paths; under --root they live below the root.
    for (const [k, v] of fromFile) {
      if (typeof v === "string" && optionByKey(k)?.path)
        fromFile.set(k, underRoot(v, root, existsSync));
    }
  } else if (explicit) {
    throw new UsageError(`--config ${file}: no such file`);
  }
  const fromEnv = envValues(env);
  const fromFlags = flagValues(opts);
  // The standard proxy variables rank below node-join's own (curl's, read by every tool, are the
  // host's default; NODE_JOIN_* and flags are this run's choice) and above the config file.
  const standard = standardProxyEnv(env);
  const fromStandardEnv: StandardProxyEnv = {};
  const fromStd: RawValues = new Map();
  let unusable: string | undefined;
  for (const key of ["proxy.https", "proxy.http", "proxy.noProxy"] as const) {
    const v = standard[key];
    if (!v) continue;
    const overridden = fromEnv.has(key) || fromFlags.has(key);
    if (v.unusable) {
      unusable ??= overridden ? undefined : v.unusable;
      continue;
    }
    fromStd.set(key, v.value);
    if (!overridden) Object.assign(fromStandardEnv, { [key]: v });
  }
  const values = mergeValues(fromFile, fromStd, fromEnv, fromFlags);
  const settings = toSettings(values, root);
  if (unusable) settings.proxy.unusable = unusable;
  // Reasons name the setting the user gave (`--before 400d`), not a key they never set.
  const beforeFrom = originOf("renew.before", { flags: fromFlags, env: fromEnv, file: fromFile });
  if (beforeFrom) settings.renew.beforeFrom = beforeFrom;
  return {
    layout: l,
    settings,
    values,
    ...(existsSync(file) ? { configFile: file } : {}),
    fromStandardEnv,
  };
}

/**
 * The setting that gave an option its value, as a message names it (flags > environment > file):
 * `--before 400d`, `NODE_JOIN_BEFORE=400d` or `renew.before: 400d`; undefined for a default.
 */
function originOf(
  key: OptionKey,
  from: { flags: RawValues; env: RawValues; file: RawValues },
): string | undefined {
  const spec = optionByKey(key)!;
  const shown = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  if (from.flags.has(key)) return `--${spec.flag} ${shown(from.flags.get(key))}`;
  if (from.env.has(key)) return `${envName(spec.flag!)}=${shown(from.env.get(key))}`;
  if (from.file.has(key)) return `${key}: ${shown(from.file.get(key))}`;
  return undefined;
}
