// The help a user reads: join's options grouped and wrapped to the terminal, choices said once,
// every command with its examples, every command listed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { EXIT_CODES_HELP, EXIT_CODES_POINTER } from "../../agent/cli/context.js";
import { allCommands } from "../../agent/cli/reference.js";
import { ALL_OPTIONS } from "../../agent/config/options.js";
import { allDocsText } from "../helpers/docs.js";
import { programReference, runMain } from "../helpers/in-process-cli.js";

const program = programReference();
/** Every command a user can ask help for: not the program, nor commander's own help command. */
const commands = allCommands(program).filter((c) => c.path.length > 0 && c.name !== "help");

const longest = (text: string): string =>
  text.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "");

test("join --help at 80 columns: no line over 80, the options under five headings", async () => {
  const r = await runMain(["join", "--help"], { COLUMNS: "80" });
  assert.equal(r.code, 0);
  assert.ok(longest(r.stdout).length <= 80, `longest line: ${longest(r.stdout)}`);
  const headings = r.stdout.split("\n").filter((l) => /^\S.*:$/.test(l));
  assert.deepEqual(headings, [
    "Options:",
    "Kubernetes CA options:",
    "Front-proxy CA options:",
    "Etcd CA options:",
    "Control plane options:",
    "Examples:",
  ]);
  // Under its heading an option no longer repeats it.
  assert.match(r.stdout, /^ {2}--etcd-ca-url <url> +URL of the CA server \(repeatable\)$/m);
  assert.match(r.stdout, /^ {2}--service-cidr <cidr> +service CIDR \(default 10\.96\.0\.0\/12\)$/m);
});

test("help wraps to $COLUMNS: a wider terminal gets longer lines", async () => {
  const narrow = await runMain(["--help"], { COLUMNS: "80" });
  const wide = await runMain(["--help"], { COLUMNS: "160" });
  assert.ok(longest(narrow.stdout).length <= 80, longest(narrow.stdout));
  assert.ok(longest(wide.stdout).length > 80, longest(wide.stdout));
  assert.match(
    wide.stdout,
    /^ {2}restart-static-pods \[options\] \[pods\.\.\.\] +restart the static pods whose certificates changed \(the default post-renew hook on control planes\)$/m,
  );
});

test("choices are said once: by commander, never also in the description", async () => {
  for (const o of ALL_OPTIONS.filter((x) => x.choices))
    for (const choice of o.choices!)
      assert.ok(!o.description.includes(choice), `${o.key}: "${o.description}" names ${choice}`);
  for (const c of commands) {
    const r = await runMain([...c.path, "--help"], { COLUMNS: "200" });
    // As the issue saw it: `(cfssl, step-ca) (choices: "cfssl", "step-ca")`.
    const doubled = r.stdout.split("\n").filter((l) => {
      const [before, after] = l.split("(choices: ");
      if (after === undefined) return false;
      const choices = [...after.split(", default:")[0]!.matchAll(/"([^"]+)"/g)].map((m) => m[1]!);
      return [", ", " or "].some((sep) => before!.includes(choices.join(sep)));
    });
    assert.deepEqual(doubled, [], c.usage);
    if (c.options.some((o) => o.value?.choices.length))
      assert.match(r.stdout, /\(choices: /, c.usage);
  }
  const install = await runMain(["timer", "install", "--help"], { COLUMNS: "200" });
  assert.match(
    install.stdout,
    /^ {2}--scheduler <kind> +where the timer goes \(auto: systemd when installed on the root, else cron\) \(choices: "auto", "systemd", "cron", default: "auto"\)$/m,
  );
});

test("every command's help ends with two or three examples, each fitting 80 columns", async () => {
  assert.deepEqual(
    commands.map((c) => c.path.join(" ")),
    [
      "join",
      "renew",
      "leave",
      "timer",
      "timer install",
      "timer remove",
      "timer status",
      "trust",
      "trust add",
      "trust remove",
      "trust list",
      "restart-static-pods",
      "status",
      "discover",
      "pin",
      "probe",
      "version",
      "completion",
      "man",
    ],
  );
  for (const c of commands) {
    const r = await runMain([...c.path, "--help"], { COLUMNS: "80" });
    assert.equal(r.code, 0, c.usage);
    const section = /\nExamples:\n((?: {2}.*\n)+)/.exec(r.stdout)?.[1];
    assert.ok(section, `${c.usage}: no Examples: section`);
    // A command line starts at the indent; a comment starts with #, a continuation further in.
    const examples = section.split("\n").filter((l) => /^ {2}[^ #]/.test(l));
    assert.ok(examples.length >= 2 && examples.length <= 3, `${c.usage}: ${examples.join(" | ")}`);
    assert.ok(longest(r.stdout).length <= 80, `${c.usage}: ${longest(r.stdout)}`);
    // The exit codes once, on the main help: a command's help points there.
    assert.ok(
      r.stdout.trimEnd().endsWith(EXIT_CODES_POINTER.trim()),
      `${c.usage}: ends without the pointer`,
    );
    assert.doesNotMatch(r.stdout, /^Exit codes:$|^ {2}0 {2}done/m, c.usage);
  }
  const main = await runMain(["--help"], { COLUMNS: "80" });
  assert.ok(
    main.stdout.trimEnd().endsWith(EXIT_CODES_HELP.trimEnd()),
    "the main help lists the exit codes",
  );
});

test("the top-level help lists restart-static-pods, completion and man", async () => {
  const r = await runMain(["--help"], { COLUMNS: "80" });
  for (const name of ["restart-static-pods [options] [pods...]", "completion <shell>", "man  "])
    assert.ok(r.stdout.includes(`\n  ${name}`), name);
});

test("the README's CLI reference lists every command", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const reference = /## CLI reference\n\n```\n([^]*?)```/.exec(readme)?.[1] ?? "";
  const listed = [...reference.matchAll(/^node-join ([a-z-]+)/gm)].map((m) => m[1]);
  assert.deepEqual(
    listed.sort(),
    program.commands
      .map((c) => c.name)
      .filter((n) => n !== "help")
      .sort(),
  );
});

test("the README or docs/ document every option of every command", () => {
  const docs = allDocsText();
  const missing = commands.flatMap((c) =>
    c.options
      .map((o) => o.names[0]!)
      .filter((n) => n.startsWith("--") && n !== "--help" && !docs.includes(`\`${n}`))
      .map((n) => `${c.path.join(" ")} ${n}`),
  );
  assert.deepEqual(missing, []);
});
