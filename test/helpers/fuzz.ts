/**
 * What every fuzzer shares: a seeded PRNG, and the count and seed from the environment, so that CI
 * runs a fixed, reproducible amount and bench/soak asks for more with the same variables.
 *
 *   WARREN_FUZZ_COUNT   inputs per in-process fuzzer (default 100,000; bench/soak passes >= 1,000,000)
 *   WARREN_FUZZ_SEED    the seed (default fixed, so CI runs are identical; a failure prints its seed)
 */

/** An environment variable as a non-negative integer, or undefined when unset or not one. */
export function envInt(name: string): number | undefined {
  const v = process.env[name]
  if (v === undefined || v === '') return undefined
  const n = Number(v)
  return Number.isInteger(n) && n >= 0 ? n : undefined
}

/** Seed and count for a fuzzer; `count` defaults to `defaultCount` (in-process fuzzers: 100,000). */
export function fuzzSettings(defaultCount = 100_000): { seed: number; count: number; explicitCount: boolean } {
  const count = envInt('WARREN_FUZZ_COUNT')
  return { seed: envInt('WARREN_FUZZ_SEED') ?? 0x5eed, count: count ?? defaultCount, explicitCount: count !== undefined }
}

/** mulberry32: tiny, fast, and good enough to drive a fuzzer reproducibly. */
export function makeRng(seed: number) {
  let a = seed >>> 0
  function next(): number {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    /** Integer in [0, n). */
    int(n: number): number {
      return Math.floor(next() * n)
    },
    chance(p: number): boolean {
      return next() < p
    },
    bytes(n: number): Uint8Array {
      const out = new Uint8Array(n)
      for (let i = 0; i < n; i++) out[i] = (next() * 256) | 0
      return out
    },
    pick<T>(xs: readonly T[]): T {
      return xs[Math.floor(next() * xs.length)]!
    },
  }
}
export type Rng = ReturnType<typeof makeRng>
