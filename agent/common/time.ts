// How times and durations read in every output (status and renew text, JSON, reasons): one form for
// an instant, ISO 8601 in UTC to the second (RFC 3339's profile, as kubectl's -o json prints
// timestamps), and kubeadm's short form for what remains.

/** An instant as `2027-12-01T00:57:35Z`: UTC, to the second, no fraction. */
export function isoDate(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** apimachinery's ShortHumanDuration, as kubeadm prints residual time. */
export function shortHumanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h`;
  if (hours < 24 * 365) return `${Math.floor(hours / 24)}d`;
  return `${Math.floor(hours / 24 / 365)}y`;
}
