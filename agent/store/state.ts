// What node-join itself issued: lets `status` tell managed files from foreign ones and the
// metrics report the last successful renewal.
import { readIfExists } from "./fsio.js";
import type { Layout } from "./layout.js";
import type { FileChange } from "./transaction.js";

export interface CertRecord {
  serial: string;
  notAfter: string;
  issuedAt: string;
}

export interface State {
  version: 1;
  certificates: Record<string, CertRecord>;
  lastRenewal?: string;
  /**
   * By CA name: the URL of the server that last answered, asked first on the next run when it is
   * still one of the CA's URLs.
   */
  caUrls?: Record<string, string>;
  /**
   * Per CA (cas.<ca>), the signer it was first seen signing with and when: renew.onSignerChange
   * early spreads the renewals of what the previous signer signed from that moment.
   */
  signers?: Record<string, SignerRecord>;
}

export interface SignerRecord {
  pin: string;
  seenAt: string;
}

/** One certificate this run issued, as the state file records it. */
export interface IssuedRecord {
  kind: string;
  serial: string;
  notAfter: Date;
}

export function readState(l: Layout): State {
  const raw = readIfExists(l.stateFile);
  if (!raw) return { version: 1, certificates: {} };
  try {
    const parsed = JSON.parse(raw.toString("utf8")) as State;
    if (parsed && typeof parsed.certificates === "object") return parsed;
  } catch {
    // a corrupt state file only loses the "managed" marks; the certificates themselves are checked
    // anew
  }
  return { version: 1, certificates: {} };
}

export function withIssued(
  state: State,
  issued: IssuedRecord[],
  now: Date,
  renewal: boolean,
): State {
  const certificates = { ...state.certificates };
  for (const i of issued) {
    certificates[i.kind] = {
      serial: i.serial,
      notAfter: i.notAfter.toISOString(),
      issuedAt: now.toISOString(),
    };
  }
  return {
    ...state,
    certificates,
    ...(renewal && issued.length ? { lastRenewal: now.toISOString() } : {}),
  };
}

/** The state with the servers that answered this run remembered (the others kept as they were). */
export function withCaUrls(state: State, answered: ReadonlyMap<string, string>): State {
  if (answered.size === 0) return state;
  return { ...state, caUrls: { ...state.caUrls, ...Object.fromEntries(answered) } };
}

export function stateFile(state: State, l: Layout): FileChange {
  return { path: l.stateFile, content: `${JSON.stringify(state, null, 2)}\n`, mode: 0o600 };
}
