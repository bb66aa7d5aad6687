import { selfCommand } from '../lib/self-command.ts'

/** mimalloc's option: milliseconds a freed page waits before it goes back to the OS (-1: never). */
const PURGE_ENV = 'MIMALLOC_PURGE_DELAY'

/**
 * Starts this process again (same pid, `execve`) with `MIMALLOC_PURGE_DELAY=-1` unless the variable
 * is set already; returns only when it is.
 *
 * Why: every socket read reaches JavaScript in a new Buffer, and Bun's allocator (mimalloc) hands
 * freed pages back to the OS 10 ms after they empty, so the next reads fault them in again, after a
 * TLB shootdown by its scavenger thread. Relaying a 64 KiB response that way cost the edge 2-3x the
 * CPU per request, /hello 1.3x (docs/benchmarks.md, "the allocator's page purging"). A delay of 5 s
 * won back only part of it (the purges still came), so pages are kept: the process holds the memory
 * of its busiest moment and reuses it. Mimalloc reads its options when the process starts, so
 * setting the variable from JavaScript would be too late. Set `MIMALLOC_PURGE_DELAY` yourself to
 * give memory back (10 is mimalloc's default).
 */
export function keepFreedPages(argv: readonly string[]): void {
  if (process.env[PURGE_ENV] !== undefined || typeof process.execve !== 'function') return
  const [file, ...rest] = selfCommand()
  // Bun's own flags (`bun --cpu-prof src/main.ts serve`) come along.
  process.execve(file!, [file!, ...process.execArgv, ...rest, ...argv], { ...process.env, [PURGE_ENV]: '-1' })
}
