// Two metrics textfiles rendered from one set of inputs: a join, then a failed renew that must keep
// the join's last run. The unit tier checks their content; the end-to-end tier runs promtool on the
// very same texts, so what promtool accepts is what the unit assertions describe.
import {
  previousRuns,
  renderMetrics,
  type CaMetric,
  type CertMetric,
} from "../../agent/ops/metrics.js";

export const SAMPLE_TIME = new Date("2026-11-23T12:00:00Z");

export const SAMPLE_CERTS: CertMetric[] = [
  {
    kind: "kubelet-client",
    file: "/var/lib/kubelet/pki/kubelet-client-current.pem",
    notAfter: new Date("2027-11-23T12:00:00Z"),
    deadline: new Date("2027-08-01T00:00:00Z"),
    cause: "ok",
  },
  // Quotes and backslashes in a label value must come out escaped.
  {
    kind: "etcd-server",
    file: '/weird "path"\\x',
    notAfter: new Date("2027-01-01T00:00:00Z"),
    deadline: new Date("2026-12-01T00:00:00Z"),
    cause: "due",
  },
  // Missing: present 0, and no expiry or deadline sample.
  { kind: "apiserver", file: "/etc/kubernetes/pki/apiserver.crt", cause: "missing" },
];

const PIN_A = `sha256:${"a1".repeat(32)}`;
const PIN_B = `sha256:${"b2".repeat(32)}`;

export const SAMPLE_CAS: CaMetric[] = [
  // A rotation: the old and the new kubernetes CA in one ca.crt.
  {
    ca: "kubernetes",
    subject: "CN=kubernetes-ca",
    pin: PIN_A,
    notAfter: new Date("2030-01-01T00:00:00Z"),
  },
  {
    ca: "kubernetes",
    subject: "CN=kubernetes-ca-2031",
    pin: PIN_B,
    notAfter: new Date("2036-01-01T00:00:00Z"),
  },
  // The same key and subject re-issued: one series, the later expiry.
  {
    ca: "kubernetes",
    subject: "CN=kubernetes-ca",
    pin: PIN_A,
    notAfter: new Date("2031-01-01T00:00:00Z"),
  },
  // Quotes, backslashes and a newline in a subject come out escaped.
  {
    ca: "etcd",
    subject: 'CN=etcd \\"ca\\"\n2,O=x',
    pin: PIN_A,
    notAfter: new Date("2029-06-01T00:00:00Z"),
  },
];

/**
 * The textfile after a join, and after a failed renew that read the join's file back: it found
 * the host's clock 3 days behind the CA's.
 */
export function sampleTextfiles(): { first: string; second: string } {
  const first = renderMetrics(
    SAMPLE_CERTS,
    { command: "join", success: true, time: SAMPLE_TIME },
    undefined,
    [],
    SAMPLE_CAS,
  );
  const second = renderMetrics(
    SAMPLE_CERTS,
    {
      command: "renew",
      success: false,
      time: SAMPLE_TIME,
      renewed: 0,
      clockNotSet: { offsetMs: -3 * 86400_000 },
    },
    SAMPLE_TIME,
    previousRuns(first, "renew"),
    SAMPLE_CAS,
  );
  return { first, second };
}
