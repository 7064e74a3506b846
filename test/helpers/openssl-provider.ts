// An OpenSSL provider that only proves it was loaded: its init writes a marker file. A config
// that activates it, as OPENSSL_CONF would name it, for Node's own section (nodejs_conf, which
// Node reads by default) and OpenSSL's (openssl_conf). OSSL_provider_init's contract:
// provider-base(7); the config format: config(5) "Provider Configuration".
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { requireCommand } from "./cfssl.js";

/** C source: no OpenSSL headers needed, the dispatch table's layout is part of the ABI. */
export function providerSource(marker: string): string {
  return `#include <stdio.h>
#include <stdlib.h>
typedef struct { int function_id; void (*function)(void); } OSSL_DISPATCH;
static const OSSL_DISPATCH none[] = {{0, NULL}};
int OSSL_provider_init(const void *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx) {
  const char *m = getenv("NJ_PROVIDER_MARKER");
  FILE *f = fopen(m ? m : ${JSON.stringify(marker)}, "w");
  if (f) { fputs("loaded\\n", f); fclose(f); }
  *out = none;
  *provctx = NULL;
  return 1;
}
`;
}

export function providerConfig(module: string): string {
  return `nodejs_conf = nj_init
openssl_conf = nj_init
[nj_init]
providers = nj_providers
[nj_providers]
marker = marker_section
default = default_section
[marker_section]
module = ${module}
activate = 1
[default_section]
activate = 1
`;
}

/** Builds the provider into `dir`: returns the config to point OPENSSL_CONF at. */
export function buildMarkerProvider(dir: string, marker: string): string {
  requireCommand("gcc", "gcc");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "marker.c"), providerSource(marker));
  execFileSync("gcc", ["-shared", "-fPIC", "-o", join(dir, "marker.so"), join(dir, "marker.c")]);
  const cnf = join(dir, "marker.cnf");
  writeFileSync(cnf, providerConfig(join(dir, "marker.so")));
  return cnf;
}
