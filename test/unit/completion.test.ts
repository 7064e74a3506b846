// Shell completion and the man page, as a user gets them: the scripts `node-join completion`
// prints, run by a real bash and a real zsh; the page `node-join man` prints, checked by groff.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ALL_OPTIONS, envName } from "../../agent/config/options.js";
import { ExitCode } from "../../agent/common/errors.js";
import { allCommands } from "../../agent/cli/reference.js";
import { tempRoot } from "../helpers/fs.js";
import { programReference, runMain } from "../helpers/in-process-cli.js";

const dir = tempRoot("nj-completion-");
const bashScript = join(dir, "node-join.bash");
const zshDir = join(dir, "zsh");

/** Runs a program the test needs, failing loudly when it is not installed. */
function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message} (bash scripts/deps.sh installs it)`);
  return r;
}

before(async () => {
  const bash = await runMain(["completion", "bash"]);
  const zsh = await runMain(["completion", "zsh"]);
  assert.equal(bash.code, 0, bash.stderr);
  assert.equal(zsh.code, 0, zsh.stderr);
  writeFileSync(bashScript, bash.stdout);
  mkdirSync(zshDir);
  writeFileSync(join(zshDir, "_node-join"), zsh.stdout);
  mkdirSync(join(dir, "files/conf.d"), { recursive: true });
  writeFileSync(join(dir, "files/config.yaml"), "");
});

/** What bash's programmable completion offers for these words, the last one being completed. */
function bashComplete(...words: string[]): string[] {
  const r = run("bash", [
    "-c",
    'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _node_join; printf "%s\\n" "${COMPREPLY[@]}"',
    "bash",
    bashScript,
    ...words,
  ]);
  assert.equal(r.stderr, "");
  assert.equal(r.status, 0);
  return r.stdout.split("\n").filter(Boolean);
}

const caFlags = ALL_OPTIONS.flatMap((o) => (o.flag?.startsWith("ca-") ? [`--${o.flag}`] : []));

test("bash: commands, subcommands, options, choices, and files where a file goes", () => {
  assert.deepEqual(bashComplete("node-join", "jo"), ["join"]);
  const commands = programReference().commands.map((c) => c.name);
  assert.ok(commands.includes("restart-static-pods") && commands.includes("help"));
  assert.deepEqual(bashComplete("node-join", ""), commands);
  assert.deepEqual(bashComplete("node-join", "join", "--ca-"), caFlags);
  assert.equal(caFlags.length, 15);
  assert.deepEqual(bashComplete("node-join", "join", "--ca-type", ""), ["cfssl", "step-ca"]);
  // pin and probe (issue 23): probe's CA types complete as join's.
  assert.deepEqual(bashComplete("node-join", "p"), ["pin", "probe"]);
  assert.deepEqual(bashComplete("node-join", "probe", "--ca-type", ""), ["cfssl", "step-ca"]);
  assert.deepEqual(bashComplete("node-join", "probe", "--l"), ["--label"]);
  assert.deepEqual(bashComplete("node-join", "join", "--etcd-ca-type", "s"), ["step-ca"]);
  assert.deepEqual(bashComplete("node-join", "join", "--key-algorithm", "ecdsa"), [
    "ecdsa-p256",
    "ecdsa-p384",
  ]);
  assert.deepEqual(bashComplete("node-join", "timer", ""), ["install", "remove", "status", "help"]);
  assert.deepEqual(bashComplete("node-join", "timer", "install", "--scheduler", ""), [
    "auto",
    "systemd",
    "cron",
  ]);
  assert.deepEqual(bashComplete("node-join", "timer", "install", "--"), [
    "--root",
    "--json",
    "--binary",
    "--scheduler",
    "--help",
  ]);
  assert.deepEqual(bashComplete("node-join", "completion", ""), ["bash", "zsh"]);
  for (const action of ["add", "remove"])
    assert.deepEqual(bashComplete("node-join", "trust", action, "--ca", ""), [
      "kubernetes",
      "front-proxy",
      "etcd",
    ]);
  // A value that happens to be a command's name is still a value.
  assert.deepEqual(bashComplete("node-join", "join", "--node-name", "timer", "--ca-ty"), [
    "--ca-type",
  ]);
  // --option=value, which bash splits at the "=".
  assert.deepEqual(bashComplete("node-join", "join", "--ca-type", "=", "st"), ["step-ca"]);
  assert.deepEqual(bashComplete("node-join", "join", "--ca-type", "="), ["cfssl", "step-ca"]);
  assert.deepEqual(bashComplete("node-join", "join", "--ca-type", "=", "cfssl", "--dry"), [
    "--dry-run",
  ]);
  // A value with nothing to complete completes to nothing, not to options.
  assert.deepEqual(bashComplete("node-join", "join", "--api-server", ""), []);
  assert.deepEqual(bashComplete("node-join", "join", "--config", join(dir, "files/")), [
    join(dir, "files/conf.d"),
    join(dir, "files/config.yaml"),
  ]);
  assert.deepEqual(bashComplete("node-join", "status", "--root", join(dir, "files/")), [
    join(dir, "files/conf.d"),
  ]);
});

/**
 * What an interactive zsh offers on Tab for each line, with the script autoloaded from $fpath: one
 * shell for all the lines (compinit is most of a shell's cost).
 */
function zshComplete(...lines: string[]): Map<string, string[]> {
  const helper = new URL("../helpers/zsh-complete.zsh", import.meta.url).pathname;
  const r = run("zsh", ["-f", helper, zshDir, ...lines], {
    env: { PATH: process.env.PATH, HOME: dir },
  });
  assert.equal(r.status, 0, `zsh completing ${JSON.stringify(lines)}: ${r.stderr}`);
  const answers = r.stdout.split("\nNJ-NEXT\n");
  assert.equal(answers.length, lines.length + 1, `one answer a line: ${r.stdout}`);
  return new Map(lines.map((l, i) => [l, [...new Set(answers[i]!.split(/\s+/).filter(Boolean))]]));
}

test("zsh: the script loads under zsh -f with compinit, and completes as bash does", () => {
  const load = run("zsh", [
    "-f",
    "-c",
    `fpath=(${zshDir} $fpath); autoload -Uz compinit; compinit -u -D; print -r -- $_comps[node-join]; source ${zshDir}/_node-join; whence -w _node-join_timer_install`,
  ]);
  assert.equal(load.stderr, "");
  assert.equal(load.stdout, "_node-join\n_node-join_timer_install: function\n");
  const expected: [string, string[]][] = [
    ["node-join jo", ["join"]],
    [
      "node-join join --etcd-ca-t",
      ["--etcd-ca-type", "--etcd-ca-tls-file", "--etcd-ca-token-file"],
    ],
    ["node-join join --ca-type ", ["cfssl", "step-ca"]],
    ["node-join probe --ca-type ", ["cfssl", "step-ca"]],
    ["node-join timer ", ["install", "remove", "status", "help"]],
    ["node-join timer install --scheduler ", ["auto", "systemd", "cron"]],
    ["node-join completion ", ["bash", "zsh"]],
    ["node-join trust add --ca ", ["kubernetes", "front-proxy", "etcd"]],
  ];
  const offered = zshComplete(...expected.map(([line]) => line));
  for (const [line, matches] of expected) assert.deepEqual(offered.get(line), matches, line);
});

test("completion refuses a shell it has no script for, naming the choices", async () => {
  const r = await runMain(["completion", "fish"]);
  assert.equal(r.code, ExitCode.usage);
  assert.match(r.stderr, /'fish'.*bash, zsh/);
  assert.equal(r.stdout, "");
});

test("the man page: groff finds nothing to warn about; it names every flag, exit code and variable", async () => {
  const r = await runMain(["man"]);
  assert.equal(r.code, 0, r.stderr);
  const page = r.stdout;
  const groff = run("groff", ["-man", "-ww", "-z"], { input: page });
  assert.equal(groff.stderr, "");
  assert.equal(groff.status, 0);
  assert.match(page, /^\.TH NODE\\-JOIN 1 /);
  const roff = (s: string) => s.replace(/-/g, "\\-");
  const program = programReference();
  const leaves = allCommands(program).filter((x) => x.commands.length === 0 && x.name !== "help");
  assert.equal(leaves.length, 17);
  for (const c of leaves) {
    assert.ok(page.includes(`.SS ${roff(c.usage)}\n`), c.usage);
    for (const o of c.options)
      for (const n of o.names) assert.ok(page.includes(`\\fB${roff(n)}\\fR`), `${c.usage} ${n}`);
  }
  for (const code of Object.values(ExitCode))
    assert.match(page, new RegExp(`^\\.TP\\n\\\\fB${code}\\\\fR\\n`, "m"), `exit code ${code}`);
  for (const o of ALL_OPTIONS.filter((x) => x.flag))
    assert.ok(page.includes(`\\fB${roff(envName(o.flag!))}\\fR`), envName(o.flag!));
});
