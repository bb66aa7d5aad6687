import { readFileSync } from 'node:fs'

/** Resident memory of a process (Linux /proc): now (`rss`) and its high-water mark (`peak`), in bytes. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

/** RSS of a process, sampled every 50 ms until `stop()`, which returns the largest sample. */
export function sampleRss(pid: number): { stop(): number } {
  let peak = memoryOf(pid).rss
  const timer = setInterval(() => (peak = Math.max(peak, memoryOf(pid).rss)), 50)
  return { stop: () => (clearInterval(timer), Math.max(peak, memoryOf(pid).rss)) }
}

/** Bytes as whole MB, for log lines. */
export function mb(bytes: number): number {
  return Math.round(bytes / 1024 / 1024)
}
