// Helpers for the integration tests (cloud-init user-data, Ubuntu autoinstall, the PXE hook): a
// local HTTP server for the binary, the executable it serves, cloud-init's runcmd script and
// write_files, systemd's ExecStart word splitting, and what a join into an installer's target
// leaves.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import { dirname, join } from "node:path";
import { BUNDLE, REPO, spawnCollect } from "./cli.js";
import { shared } from "./fixture.js";

export const sha256 = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");

/**
 * A worker joined into an installer's target (its /target, with --root): the kubelet's client
 * credential linked, the auth key file recorded as the installed system sees it, and the kubelet
 * enabled.
 */
export function assertJoinedTarget(target: string): void {
  assert.ok(
    lstatSync(join(target, "var/lib/kubelet/pki/kubelet-client-current.pem")).isSymbolicLink(),
  );
  assert.match(
    readFileSync(join(target, "etc/node-join/config.yaml"), "utf8"),
    /authKeyFile: \/etc\/node-join\/ca-auth\.key/,
  );
  assert.equal(
    readlinkSync(join(target, "etc/systemd/system/multi-user.target.wants/kubelet.service")),
    "/lib/systemd/system/kubelet.service",
  );
}

export interface FileServer {
  url: string;
  /** Paths requested, in order. */
  requests: string[];
  stop(): Promise<void>;
}

/** A file server (startFileServer) for the whole test file: up before its tests, stopped after. */
export function useFileServer(files: Record<string, Buffer | string>): FileServer {
  return shared(
    () => startFileServer(files),
    (server) => server.stop(),
  );
}

/** Serves `files` (path -> content) on 127.0.0.1; anything else is a 404. */
export function startFileServer(files: Record<string, Buffer | string>): Promise<FileServer> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    requests.push(path);
    const body = files[path];
    if (body === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res
      .writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": Buffer.byteLength(body),
      })
      .end(body);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      if (!addr || typeof addr !== "object") return reject(new Error("no address"));
      resolve({
        url: `http://127.0.0.1:${addr.port}`,
        requests,
        stop: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}

/**
 * The executable the tests serve as "the node-join binary": the single binary named by
 * NODE_JOIN_BIN when set, else a sh wrapper running the bundle with this Node.
 */
export function servedBinary(): { bytes: Buffer; sha256: string; single: boolean } {
  const bin = process.env.NODE_JOIN_BIN;
  const bytes = bin
    ? readFileSync(bin)
    : Buffer.from(`#!/bin/sh\nexec '${process.execPath}' '${BUNDLE}' "$@"\n`);
  if (!bin) readFileSync(BUNDLE); // fails loudly when the bundle is missing (npm run build)
  return { bytes, sha256: sha256(bytes), single: Boolean(bin) };
}

export type RunCmd = string | string[] | null;

/**
 * The script cloud-init's runcmd module writes (cloudinit.util.shellify): strings verbatim, lists
 * single-quoted.
 */
export function shellify(cmds: RunCmd[]): string {
  let out = "#!/bin/sh\n";
  for (const c of cmds) {
    if (Array.isArray(c))
      out += `${c.map((a) => `'${String(a).replace(/'/g, `'\\''`)}'`).join(" ")}\n`;
    else if (typeof c === "string") out += `${c}\n`;
  }
  return out;
}

export interface WriteFile {
  path: string;
  content?: string;
  owner?: string;
  permissions?: string;
}

/**
 * Writes cloud-init write_files entries under `root` with their permissions; `content` overrides by
 * path.
 */
export function writeFilesUnder(
  root: string,
  entries: WriteFile[],
  content: Record<string, string>,
): void {
  for (const e of entries) {
    const body = content[e.path];
    if (body === undefined) throw new Error(`no test content for write_files entry ${e.path}`);
    const file = join(root, e.path);
    mkdirSync(dirname(file), { recursive: true });
    const mode = parseInt(e.permissions ?? "0644", 8);
    writeFileSync(file, body, { mode });
    chmodSync(file, mode);
  }
}

/** Replaces every occurrence of each key in the strings of a runcmd / late-commands list. */
export function substitute<T extends RunCmd>(cmds: T[], map: [string, string][]): T[] {
  const sub = (s: string) => map.reduce((acc, [from, to]) => acc.split(from).join(to), s);
  return cmds.map(
    (c) =>
      (Array.isArray(c) ? c.map((a) => sub(String(a))) : typeof c === "string" ? sub(c) : c) as T,
  );
}

export interface RunResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command without blocking the event loop (the file server lives in this process, so
 * spawnSync would starve it).
 */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  const r = await spawnCollect(cmd, args, opts);
  return {
    status: r.signal ? 128 : r.code,
    stdout: r.stdout,
    stderr: r.signal ? `${r.stderr}\n(killed by ${r.signal})` : r.stderr,
  };
}

let depsDone = false;
/**
 * Debian's cloud-init and busybox, installed by scripts/cloud-init-deps.sh when missing (fails
 * loudly).
 */
export function integrationDeps(): void {
  if (depsDone) return;
  execFileSync("bash", [join(REPO, "scripts/cloud-init-deps.sh")], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  depsDone = true;
}

/**
 * systemd's splitting of an ExecStart= command line (systemd.service(5), "Command lines"): words
 * separated by whitespace, "..." and '...' quoting, C escapes, then %% -> % (specifiers) and
 * $$ -> $ (environment). Throws on what systemd would reject or expand.
 */
export function systemdWords(line: string): string[] {
  const words: string[] = [];
  const esc: Record<string, string> = {
    n: "\n",
    t: "\t",
    r: "\r",
    "\\": "\\",
    '"': '"',
    "'": "'",
    " ": " ",
  };
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length) break;
    let word = "";
    let quote: string | null = null;
    for (; i < line.length; i++) {
      const c = line[i]!;
      if (c === "\\") {
        const n = line[++i];
        if (n === undefined || !(n in esc))
          throw new Error(`unknown escape \\${n ?? ""} in ${line}`);
        word += esc[n];
      } else if (quote) {
        if (c === quote) quote = null;
        else word += c;
      } else if (c === '"' || c === "'") quote = c;
      else if (/\s/.test(c)) break;
      else word += c;
    }
    if (quote) throw new Error(`unbalanced quoting in ${line}`);
    if (word.replace(/%%/g, "").includes("%")) throw new Error(`unescaped specifier in ${word}`);
    if (word.replace(/\$\$/g, "").includes("$"))
      throw new Error(`unescaped environment variable in ${word}`);
    words.push(word.replace(/%%/g, "%").replace(/\$\$/g, "$"));
  }
  return words;
}
