// CFSSL's own settings (cfssl.ts reads them): the auth key of the profiles that require
// authentication (cloudflare/cfssl auth/auth.go) and the signing profile of each kind of
// certificate.
import type { CommonCaSettings } from "./backend.js";
import { caOptions, textValue, type CaValues } from "./options.js";

export interface CfsslSettings extends CommonCaSettings {
  type: "cfssl";
  authKeyFile?: string;
  /**
   * Where the auth key lives once join succeeded: its file, or imported into the TPM (agent/tpm)
   * with the file deleted; unset: file.
   */
  identity?: "file" | "tpm";
  clientProfile?: string;
  servingProfile?: string;
  /** Server+client certificates (etcd peers); unset: the serving profile. */
  peerProfile?: string;
}

export const CFSSL_OPTIONS = caOptions([
  {
    field: "authKeyFile",
    flag: "ca-auth-key-file",
    kind: "path",
    valueName: "file",
    secret: true,
    inherit: "always",
    description: "file holding the hex auth key (mode 0600)",
  },
  {
    field: "identity",
    flag: "ca-identity",
    kind: "choice",
    valueName: "where",
    choices: ["file", "tpm"],
    inherit: "always",
    description:
      "where the node's identity lives after join: as given (default), or in the TPM: CFSSL's auth key imported, then deleted from disk, every token computed in the TPM; step-ca's X5C machine key created in the TPM, its certificate obtained once with a one-time token, every kubelet certificate enrolled and renewed with it",
  },
  {
    field: "clientProfile",
    flag: "client-profile",
    kind: "string",
    valueName: "profile",
    inherit: "always",
    listed: "last",
    description: "signing profile for client certificates",
  },
  {
    field: "servingProfile",
    flag: "serving-profile",
    kind: "string",
    valueName: "profile",
    inherit: "always",
    listed: "last",
    description: "signing profile for serving certificates",
  },
  {
    field: "peerProfile",
    flag: "peer-profile",
    kind: "string",
    valueName: "profile",
    inherit: "always",
    listed: "last",
    description: "signing profile for server+client certificates (etcd; default: serving profile)",
  },
]);

export function parseCfsslSettings(common: CommonCaSettings, value: CaValues): CfsslSettings {
  const s: CfsslSettings = { ...common, type: "cfssl" };
  for (const f of ["authKeyFile", "clientProfile", "servingProfile", "peerProfile"] as const) {
    const v = textValue(value, f);
    if (v) s[f] = v;
  }
  const identity = textValue(value, "identity");
  if (identity === "file" || identity === "tpm") s.identity = identity;
  return s;
}
