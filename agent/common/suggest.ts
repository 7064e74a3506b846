// "Did you mean …?" for a mistyped name: the closest candidate by edit distance, with the limits
// commander uses for unknown options and commands (commander lib/suggestSimilar.js: at most 3
// edits, and more than 40 % of the longer name unchanged), so flags and config keys suggest alike.

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and transpositions of
 * adjacent characters (Damerau-Levenshtein without repeated edits of one substring).
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) d[i] = [i];
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

const MAX_DISTANCE = 3;
const MIN_SIMILARITY = 0.4;

/** The candidates closest to `word` (ties all kept, in the order given), or [] if none is close. */
export function suggestSimilar(word: string, candidates: readonly string[]): string[] {
  let best = MAX_DISTANCE + 1;
  let found: string[] = [];
  for (const c of new Set(candidates)) {
    if (c === word) continue;
    const distance = editDistance(word, c);
    const length = Math.max(word.length, c.length);
    if (c.length <= 1 || (length - distance) / length <= MIN_SIMILARITY) continue;
    if (distance < best) [best, found] = [distance, [c]];
    else if (distance === best) found.push(c);
  }
  return found;
}

/**
 * The flags `flag` is the beginning of ("--ca-auth-key" for "--ca-auth-key-file"): too many edits
 * away for suggestSimilar, yet plainly meant. At least four characters after the dashes, so "--c"
 * suggests nothing.
 */
export function prefixedBy(flag: string, candidates: readonly string[]): string[] {
  if (!flag.startsWith("--") || flag.length < 6) return [];
  return [...new Set(candidates)].filter((c) => c !== flag && c.startsWith(flag));
}

/** " (did you mean x?)"-style text: "x", "x or y"; undefined when nothing is close. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const found = suggestSimilar(word, candidates);
  return found.length ? mean(found) : undefined;
}

/** "did you mean x?", "did you mean x, y or z?". */
export function mean(found: readonly string[]): string {
  return `did you mean ${found.length === 1 ? found[0] : `${found.slice(0, -1).join(", ")} or ${found.at(-1)}`}?`;
}
