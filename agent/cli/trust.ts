// `node-join trust add|remove|list`: the CA anchors of a joined node, for a CA rotation with an
// overlap (README "CA rotation"). The logic is in engine/trust.ts.
import { Option, type Command } from "commander";
import { UsageError } from "../common/errors.js";
import { loadSettings, type GlobalOptions } from "../config/load.js";
import type { Runtime } from "../engine/runtime.js";
import {
  formatTrustList,
  trustAdd,
  trustCa,
  trustList,
  trustRemove,
  type TrustChange,
  type TrustChangeResult,
} from "../engine/trust.js";
import { CAS } from "../pki/cas.js";
import { checkEnvironmentFile } from "../store/strict-modes.js";
import { addGlobal, examples, type Cli } from "./context.js";

const HELP = examples([
  "node-join trust add --ca kubernetes --ca-file /tmp/new-ca.crt   # phase 1",
  "node-join trust list",
  "node-join trust remove --ca kubernetes --ca-cert-hash sha256:<hex> --renew",
]);

// Each line fits an 80-column terminal with the help's indent.
const SUB_HELP = {
  add: examples([
    "# trust the new kubernetes CA beside the old one (its certificate from a file)",
    "node-join trust add --ca kubernetes --ca-file /tmp/new-ca.crt",
    "# or its pin, once the CA server sends it",
    "node-join trust add --ca etcd --ca-cert-hash sha256:<hex>",
  ]),
  remove: examples([
    "# retire the old CA; renew first what only it signed",
    "node-join trust remove --ca kubernetes --ca-cert-hash sha256:<hex> --renew",
    "node-join trust remove --ca etcd --ca-file /tmp/old-etcd-ca.crt",
  ]),
  list: examples(["node-join trust list", "node-join trust list --json | jq '.cas[].pins'"]),
};

const DESCRIPTIONS = {
  add: "trust one more certificate of a CA (a pin in the config), and refresh its bundle",
  remove: "stop trusting a CA certificate (drop its pin), and refresh the bundle",
  list: "show each CA's pins, the certificate each matched, and whether it is in the bundle",
} as const;

interface TrustOpts extends GlobalOptions {
  ca?: string;
  caFile?: string;
  caCertHash?: string;
  refresh?: boolean;
  renew?: boolean;
}

function formatChange(r: TrustChangeResult): string {
  return `${r.message}\n${r.bundle.map((b) => `  ${b.pin} ${b.subject}, expires ${b.notAfter}\n`).join("")}`;
}

export function registerTrust(program: Command, cli: Cli): void {
  const trust = program
    .command("trust")
    .description("add, remove or list the CA certificates this node trusts (CA rotation)")
    .addHelpText("after", HELP);
  for (const action of ["add", "remove", "list"] as const) {
    const sub = addGlobal(trust.command(action).description(DESCRIPTIONS[action]));
    if (action !== "list") {
      sub
        // Choices, so that help and completion (bash, zsh) offer them; trustCa checks the role.
        .addOption(
          new Option("--ca <name>", "the CA")
            .choices(Object.values(CAS).map((c) => c.display))
            .makeOptionMandatory(),
        )
        .option("--ca-cert-hash <pin>", "the CA certificate's pin, sha256:<hex> as kubeadm's")
        .option("--ca-file <pem>", "a PEM file of CA certificates: each one's pin")
        .option("--no-refresh", "do not reach the CA servers: the bundles from the node's files");
    }
    if (action === "remove")
      sub.option("--renew", "renew first the certificates that chain only to the retired CA");
    sub.addHelpText("after", SUB_HELP[action]);
    sub.action(async (opts: TrustOpts) => {
      // Only --root and --config: --ca-file and --ca-cert-hash name what to change, not settings.
      const loaded = loadSettings(
        {
          ...(opts.root !== undefined ? { root: opts.root } : {}),
          ...(opts.config !== undefined ? { config: opts.config } : {}),
        },
        cli.io.env,
      );
      checkEnvironmentFile(loaded.layout.environmentFile);
      const rt: Runtime = cli.runtime(loaded.layout.root);
      if (!loaded.configFile)
        throw new UsageError(
          `no config at ${loaded.layout.configFile}: run node-join join first (trust changes the pins join persisted)`,
        );
      if (action === "list") {
        const r = trustList(loaded.settings, loaded.layout);
        cli.setResult({ json: Boolean(opts.json), value: r, text: formatTrustList(r) });
        return;
      }
      const change: TrustChange = {
        settings: loaded.settings,
        configFile: loaded.configFile,
        ca: trustCa(opts.ca!, loaded.settings.role),
        input: {
          ...(opts.caCertHash !== undefined ? { certHash: opts.caCertHash } : {}),
          ...(opts.caFile !== undefined ? { caFile: opts.caFile } : {}),
        },
        refresh: opts.refresh !== false,
        renew: Boolean(opts.renew),
      };
      const r = action === "add" ? await trustAdd(change, rt) : await trustRemove(change, rt);
      cli.setResult({ json: Boolean(opts.json), value: r, text: formatChange(r) });
    });
  }
}
