// One-time step-ca tokens minted elsewhere (`step ca token`), one per certificate. A token is
// routed to the certificate whose CN and SANs equal its sub and sans, read from its (unverified)
// claims, so the operator never has to label them and a token for the wrong node is never spent.
// Tokens node-join mints are for the provisioner picked here (JWK, or X5C: x5c.ts).
import { ipFamily } from "../../common/ip.js";
import type { CertTemplate } from "../../pki/certs.js";
import { UsageError } from "../../common/errors.js";
import { normalizeIp } from "../../pki/x509.js";
import type { PlannedRequest } from "../backend.js";
import { decodeJwt, JoseError } from "../jose.js";

export interface GivenToken {
  token: string;
  /** 1-based position in its source, for messages. */
  position: number;
  sub: string;
  sans: string[];
  /** Seconds since the epoch, when the token says. */
  exp?: number;
  /** The root fingerprint the token was minted for (step writes it). */
  sha?: string;
}

export interface SkippedToken {
  token: GivenToken;
  why: string;
}

function canonicalSan(name: string): string {
  return ipFamily(name) ? normalizeIp(name) : name.toLowerCase();
}

/**
 * Tokens from a file or variable: one per line (or separated by spaces or commas); # starts a
 * comment.
 */
export function parseTokenList(text: string, source: string): GivenToken[] {
  const words = text
    .split("\n")
    .map((line) => line.replace(/#.*$/, ""))
    .flatMap((line) => line.split(/[\s,]+/))
    .filter(Boolean);
  return words.map((token, i) => {
    const where = `token ${i + 1} in ${source}`;
    let claims: Record<string, unknown>;
    try {
      ({ claims } = decodeJwt(token));
    } catch (err) {
      throw new UsageError(
        `${where} is not a step-ca one-time token (${err instanceof JoseError ? err.message : String(err)})`,
      );
    }
    if (typeof claims.sub !== "string" || claims.sub === "")
      throw new UsageError(`${where} has no sub claim (the certificate's CN)`);
    const sans = Array.isArray(claims.sans)
      ? claims.sans.filter((x): x is string => typeof x === "string")
      : [];
    return {
      token,
      position: i + 1,
      sub: claims.sub,
      sans,
      ...(typeof claims.exp === "number" ? { exp: claims.exp } : {}),
      ...(typeof claims.sha === "string" ? { sha: claims.sha.toLowerCase() } : {}),
    };
  });
}

/**
 * The SANs a token must carry for a template; a template without SANs also takes [CN], what `step
 * ca token <CN>` writes.
 */
export function tokenFits(t: GivenToken, template: CertTemplate): boolean {
  if (t.sub !== template.commonName) return false;
  const want = new Set([...template.sans.dnsNames, ...template.sans.ips].map(canonicalSan));
  const got = new Set(t.sans.map(canonicalSan));
  if (want.size === 0 && got.size === 1 && t.sans[0] === template.commonName) return true;
  return want.size === got.size && [...want].every((n) => got.has(n));
}

export function describeTemplate(template: CertTemplate): string {
  const sans = [...template.sans.dnsNames, ...template.sans.ips];
  return `CN ${template.commonName}, ${sans.length ? `SANs ${sans.join(", ")}` : "no SANs"}`;
}

function describeToken(t: GivenToken): string {
  return `${t.sub}${t.sans.length ? ` [${t.sans.join(", ")}]` : ""}`;
}

export class TokenPool {
  readonly usable: GivenToken[];
  readonly skipped: SkippedToken[] = [];
  private readonly reserved = new Map<string, GivenToken>();
  private readonly used = new Set<GivenToken>();

  /**
   * Leaves out, with the reason, tokens that cannot work here: expired, or minted for another root.
   */
  constructor(tokens: GivenToken[], nowSeconds: number, rootFingerprints: string[]) {
    this.usable = tokens.filter((t) => {
      if (t.exp !== undefined && t.exp <= nowSeconds) {
        this.skipped.push({ token: t, why: `expired at ${new Date(t.exp * 1000).toISOString()}` });
        return false;
      }
      if (t.sha !== undefined && rootFingerprints.length > 0 && !rootFingerprints.includes(t.sha)) {
        this.skipped.push({ token: t, why: `minted for another CA (root fingerprint ${t.sha})` });
        return false;
      }
      return true;
    });
  }

  get size(): number {
    return this.usable.length;
  }

  private free(req: PlannedRequest): GivenToken | undefined {
    const taken = new Set([...this.used, ...this.reserved.values()]);
    return this.usable.find((t) => !taken.has(t) && tokenFits(t, req.template));
  }

  /** Reserves a fitting token for each request; returns the requests left without one. */
  reserve(reqs: PlannedRequest[]): PlannedRequest[] {
    return reqs.filter((req) => {
      if (this.reserved.has(req.kind)) return false;
      const t = this.free(req);
      if (t) this.reserved.set(req.kind, t);
      return t === undefined;
    });
  }

  /** Whether a token is there for this request (reserved for it or free). */
  has(req: PlannedRequest): boolean {
    const t = this.reserved.get(req.kind);
    return (t !== undefined && !this.used.has(t)) || this.free(req) !== undefined;
  }

  /** The token for this request, marked used (a token is good for one certificate). */
  take(req: PlannedRequest): GivenToken | undefined {
    const reserved = this.reserved.get(req.kind);
    const t = reserved && !this.used.has(reserved) ? reserved : this.free(req);
    if (t) this.used.add(t);
    return t;
  }

  /** Every token given was used in this run or cannot work (expired, another CA's). */
  spent(): boolean {
    return this.usable.every((t) => this.used.has(t));
  }

  /** What the given tokens are for, to explain why none fits. */
  summary(): string {
    const parts = [
      ...this.usable.map((t) => `token ${t.position}: ${describeToken(t)}`),
      ...this.skipped.map((s) => `token ${s.token.position}: ${describeToken(s.token)}, ${s.why}`),
    ];
    return parts.length ? parts.join("; ") : "none";
  }
}

/**
 * The provisioner of `type` that --ca-provisioner names, or the CA's only one of that type; exit 2
 * listing the CA's provisioners of that type otherwise.
 */
export function pickProvisioner<P extends { name: string }>(
  type: "JWK" | "X5C",
  all: P[],
  name: string | undefined,
  description: string,
  prefix: string,
): P {
  const names = all.map((p) => p.name).join(", ") || "none";
  if (name) {
    const p = all.find((x) => x.name === name);
    if (!p)
      throw new UsageError(
        `${description}: no ${type} provisioner "${name}" (--${prefix}ca-provisioner); the CA has: ${names}`,
      );
    return p;
  }
  if (all.length === 1) return all[0]!;
  throw new UsageError(
    `${description}: ${all.length === 0 ? `the CA has no ${type} provisioner` : `choose the ${type} provisioner with --${prefix}ca-provisioner (the CA has: ${names})`}`,
  );
}
