/**
 * `fn` with its results kept by argument. For values that repeat across requests (patterns, CIDR
 * literals, client addresses, User-Agents): the cache is emptied when it reaches `limit` entries,
 * which bounds memory without the bookkeeping of an LRU.
 */
export function memoize<T>(fn: (key: string) => T, limit: number): (key: string) => T {
  const cache = new Map<string, T>()
  return (key) => {
    let hit = cache.get(key)
    if (hit === undefined && !cache.has(key)) {
      hit = fn(key)
      if (cache.size >= limit) cache.clear()
      cache.set(key, hit)
    }
    return hit as T
  }
}
