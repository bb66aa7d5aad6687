/**
 * `fn` with its results kept by argument. For values that repeat across requests (patterns, CIDR
 * literals, client addresses, User-Agents): the cache is emptied when it reaches `limit` entries,
 * which bounds memory without the bookkeeping of an LRU.
 */
export function memoize<T>(fn: (key: string) => T, limit: number): (key: string) => T {
  const cache = new Map<string, T>()
  // The last key asked, before the map: one client's requests, one User-Agent, ask the same key in a row.
  let lastKey: string | undefined
  let last: T | undefined
  return (key) => {
    if (key === lastKey) return last as T
    let hit = cache.get(key)
    if (hit === undefined && !cache.has(key)) {
      hit = fn(key)
      if (cache.size >= limit) cache.clear()
      cache.set(key, hit)
    }
    lastKey = key
    last = hit
    return hit as T
  }
}
