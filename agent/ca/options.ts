// What a CA backend declares about its settings: the options it reads below cas.<ca> (config key,
// flag, kind, help), which of them name a secret's file, and which the front-proxy and etcd CAs
// take from the kubernetes CA. config/options.ts turns every declaration into one option per CA
// (flag prefix, NODE_JOIN_* variable, help group), so a backend names its settings here and
// nowhere else.

/**
 * How an option's value is given: a file path (made absolute, persisted relative to --root), one
 * of `choices`, free text, or a list (a repeatable flag).
 */
export type CaOptionKind = "path" | "choice" | "string" | "list";

/** A value of one CA option: text, or the strings of a list. */
export type CaValue = string | string[];

/** One CA's values by field (the config key below cas.<ca>), as the sources gave them. */
export type CaValues = (field: string) => CaValue | undefined;

/**
 * Whether the front-proxy and etcd CAs take a setting from the kubernetes CA when they lack their
 * own: "always" (one auth key, provisioner or profile serves all three CAs), "with-server" (while
 * they share its server, that is, have no URL of their own), or a backend's own rule given both
 * CAs' own values. Absent: never (pins, CA files and labels stay per CA).
 */
export type CaInheritance =
  "always" | "with-server" | ((own: CaValues, kubernetes: CaValues) => boolean);

export interface CaOptionSpec<F extends string = string> {
  /** The config key below cas.<ca>: "authKeyFile". */
  readonly field: F;
  /**
   * The flag without the CA's prefix ("ca-auth-key-file" gives --etcd-ca-auth-key-file); its
   * environment variable is NODE_JOIN_ and the prefixed flag in capitals.
   */
  readonly flag: string;
  readonly kind: CaOptionKind;
  /** The value's name in --help (`<file>`); "file", "pem" and "path" complete to files. */
  readonly valueName: string;
  /** The help text after the CA's title ("kubernetes CA: ..."). */
  readonly description: string;
  /** kind "choice": the values it takes. */
  readonly choices?: readonly string[];
  /** Why a value (each value of a list) is wrong, or undefined. */
  readonly check?: (value: string) => string | undefined;
  /**
   * The file holds a secret: the backend's SecretKind reads it (secrets.ts), and only its path is
   * ever persisted or shown.
   */
  readonly secret?: boolean;
  /**
   * A trust anchor of this backend beyond the common pins and CA file: join's "no trust anchor"
   * error offers it first.
   */
  readonly anchor?: boolean;
  readonly inherit?: CaInheritance;
  /**
   * "last": listed after every backend's other options (--help, man page, README tables): what to
   * ask the CA for (signing profiles) comes after how to reach and authenticate to it.
   */
  readonly listed?: "last";
}

/** Declares a backend's options, keeping each field's name as a type. */
export const caOptions = <const F extends string>(
  specs: readonly CaOptionSpec<F>[],
): readonly CaOptionSpec<F>[] => specs;

/** A declared option's value of kind path, string or choice (a list's values are not text). */
export function textValue(value: CaValues, field: string): string | undefined {
  const v = value(field);
  return typeof v === "string" ? v : undefined;
}

/**
 * The value of `spec` for one CA: its own, else, for the front-proxy and etcd CAs, the kubernetes
 * CA's where the option's inheritance allows.
 */
export function effectiveValue(
  spec: CaOptionSpec,
  own: CaValues,
  kubernetes: CaValues | undefined,
): CaValue | undefined {
  const mine = own(spec.field);
  if (mine !== undefined || !kubernetes || !spec.inherit) return mine;
  const inherits =
    spec.inherit === "always"
      ? true
      : spec.inherit === "with-server"
        ? own("url") === undefined
        : spec.inherit(own, kubernetes);
  return inherits ? kubernetes(spec.field) : undefined;
}
