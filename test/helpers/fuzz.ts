// fast-check settings shared by the property tests. Runs are seeded so that a property with a
// chance element (say, "some generated answers verified") cannot fail on one run and pass on the
// next; FUZZ_SEED picks another seed (to explore, or to replay a reported failure) and FUZZ_RUNS
// multiplies the number of runs.
import fc from "fast-check";

const DEFAULT_SEED = 20_261_123;

/**
 * Seeds every fc.assert in the calling test file and prints the seed, so a failure can be replayed.
 */
export function seedFastCheck(): number {
  const raw = process.env.FUZZ_SEED?.trim();
  const seed = raw ? Number(raw) : DEFAULT_SEED;
  if (!Number.isSafeInteger(seed))
    throw new Error(`FUZZ_SEED must be an integer, not ${JSON.stringify(raw)}`);
  fc.configureGlobal({ ...fc.readConfigureGlobal(), seed });
  console.error(`# fast-check seed ${seed} (replay with FUZZ_SEED=${seed})`);
  return seed;
}

/** The run count scaled by FUZZ_RUNS (default 1). */
export function fuzzRuns(n: number): number {
  return n * (Number(process.env.FUZZ_RUNS ?? 1) || 1);
}
