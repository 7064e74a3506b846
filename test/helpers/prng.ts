// A small seeded generator (mulberry32) for tests that draw many random inputs and judge them by a
// statistical threshold: with a fixed seed every run computes the same figures, so such a test
// cannot pass on one run and fail on the next by chance. Not for anything cryptographic.

export interface Prng {
  /** The next 32-bit unsigned integer. */
  uint32(): number;
  /** A float in [0, 1), a drop-in for Math.random. */
  random(): number;
  /** `bytes` random bytes as lower-case hex, in place of randomBytes(bytes).toString("hex"). */
  hex(bytes: number): string;
}

export function mulberry32(seed: number): Prng {
  let state = seed >>> 0;
  const uint32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    uint32,
    random: () => uint32() / 0x1_0000_0000,
    hex: (bytes) => {
      let out = "";
      while (out.length < bytes * 2) out += uint32().toString(16).padStart(8, "0");
      return out.slice(0, bytes * 2);
    },
  };
}
