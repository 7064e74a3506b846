// An in-process CA behind the real CaBackend interface (agent/ca/backend.ts), for the engine's
// fast tests: it signs what it is asked for with a key of its own, on the test's clock, and counts
// what it was asked. The end-to-end tests use a real CFSSL and step-ca instead.
import "reflect-metadata";
import { createPrivateKey } from "node:crypto";
import * as x509 from "@peculiar/x509";
import type {
  CaBackend,
  PlannedRequest,
  Renewed,
  RenewRequest,
  RevokeRequest,
  SignRequest,
} from "../../agent/ca/backend.js";
import type { Clock } from "../../agent/common/clock.js";
import type { CaName } from "../../agent/pki/cas.js";
import { CaRefusedError, CaUnreachableError } from "../../agent/common/errors.js";
import { parseCert, type CertInfo } from "../../agent/pki/x509.js";
import { issueLeaf, makeCa, type TestCa } from "./pki.js";

const EKUS = {
  client: ["1.3.6.1.5.5.7.3.2"],
  serving: ["1.3.6.1.5.5.7.3.1"],
  peer: ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
};

export class FakeCa implements CaBackend {
  readonly description: string;
  /** Kinds signed, in order; `renewed` the ones renewed with the installed credentials. */
  readonly signed: string[] = [];
  readonly renewed: string[] = [];
  fetches = 0;
  /** Set to make the CA fail: "down" (unreachable) or "refuse" every request of these kinds. */
  failure?: { mode: "down" | "refuse"; kinds?: string[] };
  /** More CA certificates served after the signer's (a rotation's next or previous CA). */
  alsoServed: TestCa[] = [];
  /** Set to offer a renewal path authenticated by the current certificate, like step-ca. */
  renew?: (req: RenewRequest) => Promise<Renewed>;
  /** Set to refuse enrolment in place of a renewal (CaBackend.cannotEnrol); absent: sign acts. */
  cannotEnrol?: (req: PlannedRequest, why: string) => Error | undefined;
  /** Set to offer revocation (withRevocation); absent: a CA that cannot revoke. */
  revoke?: (req: RevokeRequest) => Promise<void>;
  /** What was revoked: "<kind> <serial> <reason>", in order. */
  readonly revoked: string[] = [];
  /** Set to make revocations alone fail, signing still working. */
  revokeFailure?: "down" | "refuse";
  /** Like step-ca: a revocation needs the certificate's own key (checked against it). */
  revokesWithKey = false;
  /**
   * The CA's own time, when a test moves the host's clock away from it (a board without a clock):
   * it signs and dates its answers by it. Default: the test's clock.
   */
  ownTime?: () => number;

  private constructor(
    readonly name: string,
    /** The signer: a test replaces it to switch the CA to a new key (a rotation's phase 2). */
    public ca: TestCa,
    private readonly clock: Clock,
    readonly lifetimeMs: number,
  ) {
    this.description = `CA ${name} (fake)`;
  }

  static async create(name: string, clock: Clock, lifetimeMs = 365 * 86400_000): Promise<FakeCa> {
    return new FakeCa(name, await makeCa(`${name}-ca`), clock, lifetimeMs);
  }

  /** One fake CA for each of the cluster's three CAs, issuing for `lifetimeMs`. */
  static async forEveryCa(clock: Clock, lifetimeMs?: number): Promise<Record<CaName, FakeCa>> {
    const [kubernetes, frontProxy, etcd] = await Promise.all(
      ["kubernetes", "front-proxy", "etcd"].map((n) => FakeCa.create(n, clock, lifetimeMs)),
    );
    return { kubernetes: kubernetes!, frontProxy: frontProxy!, etcd: etcd! };
  }

  /** Offers renewal with the installed credentials, recording what was renewed. */
  withRenewalPath(): this {
    this.renew = async (req) => {
      this.renewed.push(req.kind);
      return { chainPem: await this.issue(req), keptCurrentKey: false };
    };
    return this;
  }

  /**
   * Offers revocation, recording each as "<kind> <serial> <reason>"; `failure` makes it fail as a
   * CA refusing (or unreachable) would, for these kinds (all when none are named).
   */
  withRevocation(): this {
    this.revoke = async (req) => {
      const f = this.revokeFailure ? { mode: this.revokeFailure, kinds: undefined } : this.failure;
      const cert = parseCert(req.certPem);
      const serial = cert.serial;
      if (
        this.revokesWithKey &&
        !(req.keyPem && cert.node.checkPrivateKey(createPrivateKey(req.keyPem)))
      )
        throw new CaRefusedError(`${this.description} revoking serial ${serial}: not its key`);
      if (f && (!f.kinds || f.kinds.includes(req.kind))) {
        if (f.mode === "down")
          throw new CaUnreachableError(`${this.description} unreachable: connection refused`);
        throw new CaRefusedError(`${this.description} revoking serial ${serial} refused: policy`);
      }
      this.revoked.push(`${req.kind} ${serial} ${req.reason}`);
    };
    return this;
  }

  get anchor(): CertInfo {
    return parseCert(this.ca.pem);
  }

  /** The Date header of its answers, as Go's net/http sends it: whole seconds (RFC 9110 5.6.7). */
  lastDate(): Date {
    return new Date(Math.floor(this.caNow() / 1000) * 1000);
  }

  private caNow(): number {
    return this.ownTime?.() ?? this.clock.now();
  }

  async fetchCaBundle(): Promise<CertInfo[]> {
    this.fetches++;
    if (this.failure?.mode === "down")
      throw new CaUnreachableError(`${this.description} unreachable: connection refused`);
    return [this.anchor, ...this.alsoServed.map((c) => parseCert(c.pem))];
  }

  async sign(req: SignRequest): Promise<string> {
    this.signed.push(req.kind);
    return this.issue(req);
  }

  private async issue(req: SignRequest): Promise<string> {
    const f = this.failure;
    if (f && (!f.kinds || f.kinds.includes(req.kind))) {
      if (f.mode === "down")
        throw new CaUnreachableError(`${this.description} unreachable: connection refused`);
      throw new CaRefusedError(`${this.description} signing ${req.kind} refused: policy`);
    }
    const csr = new x509.Pkcs10CertificateRequest(req.csrPem);
    const now = this.caNow();
    const leaf = await issueLeaf(this.ca, {
      publicKey: await csr.publicKey.export(),
      cn: req.template.commonName,
      o: req.template.organizations,
      dns: req.template.sans.dnsNames,
      ips: req.template.sans.ips,
      ekus: EKUS[req.profile],
      // CFSSL and kubeadm backdate by five minutes.
      notBefore: new Date(now - 5 * 60_000),
      notAfter: new Date(now + this.lifetimeMs),
    });
    return leaf + this.ca.pem;
  }
}

/**
 * A clock the test moves (from now: the test CAs are valid from an hour ago); sleeping advances it
 * at once.
 */
export function fakeClock(
  start = Date.now(),
): Clock & { set(t: number): void; advance(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    sleep: async (ms) => {
      t += ms;
    },
    set: (v) => {
      t = v;
    },
    advance: (ms) => {
      t += ms;
    },
  };
}
