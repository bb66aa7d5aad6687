import type { Environment } from '@marcbachmann/cel-js'
import { defineNamespace } from './namespace.ts'

/** A uniform integer in [min, max], both inclusive (ngrok: non-negative, min ≤ max). */
export function randomInt(min: bigint, max: bigint): bigint {
  if (min < 0n || max < 0n) throw new RangeError(`rand.int(${min}, ${max}): bounds must not be negative`)
  if (max < min) throw new RangeError(`rand.int(${min}, ${max}): max is less than min`)
  const span = max - min + 1n
  if (span <= BigInt(Number.MAX_SAFE_INTEGER)) return min + BigInt(Math.floor(Math.random() * Number(span)))
  // Wider than 2^53: combine two draws.
  const hi = BigInt(Math.floor(Math.random() * 2 ** 32))
  const lo = BigInt(Math.floor(Math.random() * 2 ** 32))
  return min + (((hi << 32n) | lo) % span)
}

/** `rand.double()` in [0, 1), `rand.int()` (0 or 1) and `rand.int(min, max)`. Not for secrets. */
export function registerRandom(env: Environment): void {
  const rand = defineNamespace(env, 'rand')
  env.registerFunction(`${rand}.double(): double`, () => Math.random())
  env.registerFunction(`${rand}.int(): int`, () => randomInt(0n, 1n))
  env.registerFunction(`${rand}.int(int, int): int`, (_ns: unknown, min: bigint, max: bigint) => randomInt(min, max))
}
