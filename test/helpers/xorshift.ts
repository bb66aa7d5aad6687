/** A seeded xorshift32 in [0, 1): fuzz tests print their seed, and the same seed replays the same run. */
export function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 0x100000000
  }
}
