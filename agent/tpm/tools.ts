// Runs one tpm2-tools command (tpm2-software/tpm2-tools, Debian tpm2-tools 5.4) against the TPM a
// TCTI names, and turns its failures into one-line errors with the fix. No npm TPM 2.0 library is
// maintained, so the TPM is reached through these programs only.
//
// What the host's environment could steer is not passed on: the programs are run by absolute path
// (no PATH lookup), with an environment of their own holding only TPM2TOOLS_TCTI (the caller's
// TPM2TOOLS_* and TSS2_* variables, e.g. TSS2_TCTI or TPM2TOOLS_ENABLE_ERRATA, never reach them),
// and the TCTI is also given with -T (tpm2-tools(1): "-T, --tcti").
import { existsSync } from "node:fs";
import { childProcess } from "../common/builtins.js";
import { LocalIoError, UsageError } from "../common/errors.js";

/** Where Debian's tpm2-tools installs its programs. */
export const TPM2_TOOLS_DIR = "/usr/bin";

/**
 * A TPM answers within a second or two (an ECC primary key is the slowest step here). One that
 * does not answer is held by another client: a TPM without a resource manager in front of it
 * (/dev/tpm0, a swtpm socket) serves one connection at a time and makes the others wait.
 */
export const TPM_TIMEOUT_MS = 10_000;

export interface TpmToolsOptions {
  /** The TCTI (tpm2-tools(1)): device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321, ... */
  tcti: string;
  /** Where the programs are (default /usr/bin); a test names a directory without them. */
  toolsDir?: string;
  /** How long one command may take before the TPM counts as busy. */
  timeoutMs?: number;
  /** The setting that gave the TCTI, for messages: "tpm.tcti (--tpm-tcti)". */
  setting?: string;
}

/** A failure of the TPM or of reaching it: exit 6 (local I/O), the message names the TPM. */
export class TpmError extends LocalIoError {}

/**
 * The TPM refused an object this node saved: a wrapped key made by another TPM (a copied disk),
 * or by this one before its storage hierarchy was cleared.
 */
export class TpmForeignKeyError extends TpmError {
  /**
   * fix: what brings the identity back, which depends on what the key was (the CFSSL auth key:
   * its file again; the X5C machine key: a new key and machine certificate, tpm-x5c.ts).
   */
  constructor(
    readonly tpm: string,
    fix = "join again with the enrolment secret",
  ) {
    super(
      `${tpm} cannot load the node's key: it was wrapped by another TPM (a copy of this node's disk on another machine), or this TPM's storage hierarchy was cleared since: ${fix}`,
    );
  }
}

export const DEFAULT_TCTI = "device:/dev/tpmrm0";
const TCTI_SETTING = "tpm.tcti (--tpm-tcti)";

/** The TPM as messages name it: "TPM device:/dev/tpmrm0". */
export const tpmName = (tcti: string): string => `TPM ${tcti}`;

export interface ToolRun {
  stdout: Buffer;
  stderr: string;
}

/** The last ERROR line tpm2-tools printed, without the source location of the TSS's own lines. */
function lastError(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => /^ERROR/.test(l));
  const line = lines.at(-1) ?? stderr.trim().split("\n").at(-1) ?? "";
  return line.replace(/^ERROR(:[a-z]+:\S+)?:?\s*/, "").slice(0, 200);
}

/**
 * The error for a failed command, from what tpm2-tools and the TSS printed: which of the known
 * failures (no TPM, no access, busy, nothing listening, an unknown TCTI, a key of another TPM) it
 * is, each with its fix.
 */
export function toolFailure(tool: string, stderr: string, o: TpmToolsOptions): Error {
  const tpm = tpmName(o.tcti);
  const setting = o.setting ?? TCTI_SETTING;
  const device = /Failed to open specified TCTI device file (\S+): (.*?)\s*$/m.exec(stderr);
  if (device) {
    const [, file, why] = device;
    if (/No such file/.test(why!))
      return new TpmError(
        `${tpm}: no TPM at ${file}: the host has no TPM 2.0, it is off in the firmware, or its driver is not loaded (ls /dev/tpm*); or set ${setting}`,
        "ENOENT",
      );
    if (/Permission denied/.test(why!))
      return new TpmError(
        `${tpm}: not allowed to open ${file}: run as root (or as a member of group tss)`,
        "EACCES",
      );
    if (/busy/i.test(why!))
      return new TpmError(
        `${tpm}: ${file} is in use by another program (a TPM without a resource manager takes one client at a time): use device:/dev/tpmrm0, or stop the other program (fuser ${file})`,
        "EBUSY",
      );
    return new TpmError(`${tpm}: cannot open ${file}: ${why}`);
  }
  if (/Failed to connect|Cannot connect|Connection refused/.test(stderr))
    return new TpmError(
      `${tpm}: nothing answers at this TCTI (connection refused): start the TPM (swtpm socket ...) or fix ${setting}`,
      "ECONNREFUSED",
    );
  if (/Could not load tcti/.test(stderr))
    return new UsageError(
      `${setting} "${o.tcti}": tpm2-tools cannot load this TCTI (known: device:/dev/tpmrm0, device:/dev/tpm0, swtpm:host=H,port=P, mssim:host=H,port=P; their libtss2-tcti-* library must be installed)`,
    );
  // TPM_RC_INTEGRITY (0x1DF, TPM 2.0 Part 2 §6.6.3): the wrapped private part was not made under
  // this TPM's storage primary key.
  if (/0x1DF|integrity check failed/i.test(stderr)) return new TpmForeignKeyError(tpm);
  // TPM_RC_HIERARCHY / TPM_RC_AUTH_FAIL on the owner hierarchy: it has a password node-join does
  // not know.
  if (/0x9A2|0x98E|authorization|0x921/i.test(stderr) && tool === "tpm2_createprimary")
    return new TpmError(
      `${tpm}: the owner hierarchy refused to create the storage key (${lastError(stderr)}): it has an authorization value; node-join needs an owner hierarchy without one (tpm2_changeauth -c o)`,
    );
  if (/0x902|out of memory for object/i.test(stderr))
    return new TpmError(
      `${tpm}: the TPM holds too many objects (0x902): another program left them loaded; tpm2_flushcontext -t, or use device:/dev/tpmrm0`,
    );
  return new TpmError(`${tpm}: ${tool} failed: ${lastError(stderr) || "no reason given"}`);
}

/** The program's path, or the error saying tpm2-tools is missing (checked before it is run). */
export function toolPath(tool: string, o: TpmToolsOptions): string {
  const dir = o.toolsDir ?? TPM2_TOOLS_DIR;
  const path = `${dir}/${tool}`;
  if (!existsSync(path))
    throw new TpmError(
      `${tpmName(o.tcti)}: tpm2-tools is not installed (no ${path}): apt-get install tpm2-tools (dnf install tpm2-tools)`,
      "ENOENT",
    );
  return path;
}

/**
 * Runs `tool args` against the TPM, `input` on its standard input; its standard output. Fails with
 * toolFailure's error, or as busy when it does not finish within the timeout. `local`: a tool that
 * opens no TPM.
 */
export async function runTool(
  tool: string,
  args: string[],
  o: TpmToolsOptions,
  input?: Buffer,
  local = false,
): Promise<ToolRun> {
  const path = toolPath(tool, o);
  const timeoutMs = o.timeoutMs ?? TPM_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    // A local tool (tpm2_print) opens no TCTI and refuses -T.
    const child = childProcess().spawn(path, local ? args : ["-T", o.tcti, ...args], {
      env: { TPM2TOOLS_TCTI: o.tcti },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new TpmError(`${tpmName(o.tcti)}: cannot run ${path}: ${e.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString("utf8");
      if (timedOut)
        return reject(
          new TpmError(
            `${tpmName(o.tcti)}: no answer within ${Math.round(timeoutMs / 1000)}s (${tool}): another program holds the TPM (a TPM without a resource manager takes one client at a time): use device:/dev/tpmrm0, or stop the other program`,
            "EBUSY",
          ),
        );
      if (code !== 0) return reject(toolFailure(tool, stderr, o));
      resolve({ stdout: Buffer.concat(out), stderr });
    });
    // A tool that fails before reading its input closes the pipe: not an error of its own.
    child.stdin.on("error", () => undefined);
    child.stdin.end(input ?? Buffer.alloc(0));
  });
}
