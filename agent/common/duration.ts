// Durations as the flags and the config take them: 90s, 5m, 1h30m, 2d, 250ms.

export function parseDuration(text: string): number | undefined {
  const m = /^\s*((?:\d+(?:\.\d+)?(?:ms|s|m|h|d)\s*)+)$/.exec(text);
  if (!m) return undefined;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  for (const part of m[1]!.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g))
    total += Number(part[1]) * unit[part[2]!]!;
  return Math.round(total);
}
