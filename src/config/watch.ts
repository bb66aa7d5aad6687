import { watch, type FSWatcher } from 'node:fs'

/**
 * Calls `onChange` once per burst of changes under `dir`. Editors save in many ways (in place, temp
 * file + rename, backup copies), so every event just schedules a full, hash-deduplicated re-read.
 */
export function watchDirectory(dir: string, onChange: () => void, options: { debounceMs?: number; signal: AbortSignal }): void {
  const debounceMs = options.debounceMs ?? 75
  let timer: ReturnType<typeof setTimeout> | undefined
  let watcher: FSWatcher | undefined
  const schedule = () => {
    if (timer) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = undefined
      onChange()
    }, debounceMs)
  }
  watcher = watch(dir, { recursive: true }, schedule)
  watcher.on('error', () => schedule())
  options.signal.addEventListener('abort', () => {
    if (timer) clearTimeout(timer)
    watcher?.close()
    watcher = undefined
  })
}
