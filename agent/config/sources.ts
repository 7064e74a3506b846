// The three sources of settings (config file, NODE_JOIN_* environment, flags), each coerced and
// checked against the options table with errors that name the key, variable or flag; and the
// config file join persists.
import YAML from "yaml";
import { resolve } from "node:path";
import { parseDuration } from "../common/duration.js";
import { UsageError } from "../common/errors.js";
import { didYouMean } from "../common/suggest.js";
import { hostPath } from "../store/layout.js";
import {
  ALL_OPTIONS,
  camel,
  envName,
  optionByKey,
  type OptionKey,
  type OptionSpec,
  type Value,
  type ValueOf,
} from "./options.js";

/** Coerced values by option key; read them with `valueOf`, which knows each key's type. */
export type RawValues = Map<OptionKey, Value>;

export function valueOf<K extends OptionKey>(
  values: ReadonlyMap<OptionKey, Value>,
  key: K,
): ValueOf<K> | undefined {
  // Sound by construction: every value entered the map through coerce() for this very key.
  return values.get(key) as ValueOf<K> | undefined;
}

/**
 * Converts a raw value from a file, the environment or a flag to the option's type, or says why
 * not.
 */
function coerce(spec: OptionSpec<OptionKey>, raw: unknown, from: "file" | "env" | "flag"): Value {
  const where =
    from === "file"
      ? `config key ${spec.key}`
      : from === "env"
        ? `environment variable ${envName(spec.flag!)}`
        : `--${spec.flag}`;
  const bad = (why: string): never => {
    throw new UsageError(`${where}: ${why}`);
  };
  let value: Value;
  switch (spec.type) {
    case "string":
      if (typeof raw !== "string" || raw === "") bad("must be a non-empty string");
      value = raw as string;
      break;
    case "list": {
      const list =
        typeof raw === "string" && from !== "file"
          ? raw
              .split(",")
              .map((s) => s.trim())
              .filter(Boolean)
          : typeof raw === "string" && spec.oneAsString
            ? [raw]
            : raw;
      if (!Array.isArray(list) || list.some((x) => typeof x !== "string"))
        bad("must be a list of strings");
      // A flag takes one value (commander collects repeats); "a,b" is two values run together.
      const joined = from === "flag" ? (list as string[]).find((x) => x.includes(",")) : undefined;
      if (joined !== undefined)
        bad(`${JSON.stringify(joined)}: one value per flag: repeat --${spec.flag} for each`);
      value = list as string[];
      break;
    }
    case "bool":
      if (typeof raw === "boolean") value = raw;
      else if (from !== "file" && typeof raw === "string" && /^(true|false|1|0)$/.test(raw))
        value = raw === "true" || raw === "1";
      else value = bad("must be true or false");
      break;
    case "int": {
      const n =
        typeof raw === "number"
          ? raw
          : from !== "file" && typeof raw === "string" && /^\d+$/.test(raw)
            ? Number(raw)
            : NaN;
      if (!Number.isInteger(n)) bad("must be an integer");
      value = n;
      break;
    }
    case "duration": {
      const ms = typeof raw === "string" ? parseDuration(raw) : undefined;
      if (ms === undefined)
        bad(`must be a duration such as 90s, 5m or 2h (got ${JSON.stringify(raw)})`);
      value = raw as string;
      break;
    }
    case "argvs":
      if (
        !Array.isArray(raw) ||
        raw.some((a) => !Array.isArray(a) || a.length === 0 || a.some((x) => typeof x !== "string"))
      ) {
        bad(
          "must be a list of non-empty argv lists of strings, e.g. [[systemctl, try-restart, kubelet]]",
        );
      }
      value = raw as string[][];
      break;
  }
  if (spec.choices && !spec.choices.includes(String(value)))
    bad(`must be one of ${spec.choices.join(", ")} (got ${JSON.stringify(value)})`);
  const problem = spec.check?.(value);
  if (problem) bad(problem);
  return value;
}

/**
 * The keys a config file may hold at the place of `key` (same parent, same depth): what a mistyped
 * key is compared with.
 */
function fileKeysBeside(key: string): string[] {
  const depth = key.split(".").length;
  const parent = key.split(".").slice(0, -1).join(".");
  return ALL_OPTIONS.filter((o) => !o.notInFile)
    .map((o) => o.key.split(".").slice(0, depth).join("."))
    .filter((k) => k.split(".").length === depth && (parent === "" || k.startsWith(`${parent}.`)));
}

/** Flattens and checks a config file's YAML text; unknown keys and wrong types name the key. */
export function parseConfigText(text: string, file: string): RawValues {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    // The yaml package's first line ends with ":" before the excerpt on the next lines, left out.
    const reason = (err as Error).message.split("\n")[0]!.replace(/:\s*$/, "");
    throw new UsageError(`config ${file}: not valid YAML: ${reason}`);
  }
  const out: RawValues = new Map();
  if (doc === null || doc === undefined) return out;
  const walk = (node: unknown, prefix: string): void => {
    if (typeof node !== "object" || node === null || Array.isArray(node)) {
      throw new UsageError(`config ${file}: ${prefix || "top level"} must be a mapping`);
    }
    for (const [k, v] of Object.entries(node)) {
      const key = prefix ? `${prefix}.${k}` : k;
      const spec = optionByKey(key);
      if (spec) {
        if (v === null) continue;
        if (spec.notInFile)
          throw new UsageError(
            `config ${file}: config key ${key}: is not read from the config file: ${spec.notInFile}`,
          );
        try {
          out.set(spec.key, coerce(spec, v, "file"));
        } catch (err) {
          throw new UsageError(`config ${file}: ${(err as Error).message}`);
        }
      } else if (ALL_OPTIONS.some((o) => o.key.startsWith(`${key}.`))) {
        walk(v, key);
      } else {
        const hint = didYouMean(key, fileKeysBeside(key));
        throw new UsageError(`config ${file}: unknown key ${key}${hint ? `: ${hint}` : ""}`);
      }
    }
  };
  walk(doc, "");
  return out;
}

export function envValues(env: NodeJS.ProcessEnv): RawValues {
  const out: RawValues = new Map();
  for (const spec of ALL_OPTIONS) {
    if (!spec.flag) continue;
    const raw = env[envName(spec.flag)];
    if (raw !== undefined && raw !== "") out.set(spec.key, coerce(spec, raw, "env"));
  }
  return out;
}

/** Values from commander's parsed options (camelCased flag names). */
export function flagValues(opts: Record<string, unknown>): RawValues {
  const out: RawValues = new Map();
  for (const spec of ALL_OPTIONS) {
    if (!spec.flag) continue;
    const raw = opts[camel(spec.flag)];
    if (raw === undefined) continue;
    out.set(spec.key, coerce(spec, raw, "flag"));
  }
  return out;
}

/** Later sources win: merge(file, env, flags). Path values are made absolute. */
export function mergeValues(...sources: RawValues[]): RawValues {
  const out: RawValues = new Map();
  for (const src of sources) for (const [k, v] of src) out.set(k, v);
  for (const [k, v] of out)
    if (optionByKey(k)?.path && typeof v === "string") out.set(k, resolve(v));
  return out;
}

/**
 * The YAML persisted to /etc/node-join/config.yaml: the explicitly given values (never a secret:
 * no option holds one), with paths under `root` written as the booted host will see them.
 */
export function renderConfig(values: RawValues, root: string): string {
  const doc: Record<string, unknown> = {};
  for (const spec of ALL_OPTIONS) {
    let v = values.get(spec.key);
    if (v === undefined || spec.notInFile) continue;
    if (spec.path && typeof v === "string") v = hostPath(v, root);
    if (spec.oneAsString && Array.isArray(v) && v.length === 1) v = v[0] as string;
    let node = doc;
    const parts = spec.key.split(".");
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = v;
  }
  return `# Written by node-join join; later commands (renew, status, timer) read it.\n${YAML.stringify(doc)}`;
}
