import { selfCommand } from '../lib/self-command.ts'

/** mimalloc's option: milliseconds before freed pages go back to the OS; -1 never. */
const PURGE_ENV = 'MIMALLOC_PURGE_DELAY'

/**
 * Starts this process again (same pid, `execve`) with `MIMALLOC_PURGE_DELAY=-1` unless the variable
 * is set already; returns only when it is.
 *
 * Why: every socket read reaches JavaScript in a new Buffer, and Bun's allocator (mimalloc) hands
 * freed pages back to the OS 10 ms later, so the next reads fault them in again, after a TLB
 * shootdown by its scavenger thread. Relaying a 64 KiB response that way cost the edge 165 µs of CPU
 * against 92 µs with pages kept, /hello 73 µs against 54 (docs/benchmarks.md, "the allocator").
 * The price: the process keeps the memory of its busiest moment. Mimalloc reads its options once,
 * when the process starts, so setting the variable from JavaScript would be too late. Set
 * `MIMALLOC_PURGE_DELAY` yourself (e.g. 10, mimalloc's default) to give memory back sooner.
 */
export function keepFreedPages(argv: readonly string[]): void {
  if (process.env[PURGE_ENV] !== undefined || typeof process.execve !== 'function') return
  const [file, ...rest] = selfCommand()
  process.execve(file!, [file!, ...rest, ...argv], { ...process.env, [PURGE_ENV]: '-1' })
}
