import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { removeFile, writeAtomically } from '../api/owned-files.ts'
import { API_FILE_PATTERN } from '../config/load.ts'
import type { Logger } from '../lib/log.ts'
import type { RedisRegistry } from './redis-registry.ts'

export interface SharedApiEndpoints {
  /** This node's API changed an `api-<id>.yml` (created, updated, deleted): the other nodes get it. */
  changed(): void
}

/**
 * Endpoints created through the REST API on any node, served by every node. The API writes
 * `policies/api-<id>.yml` as without a cluster; the node then copies its API files into Redis (the
 * map `api-endpoints`), and every other node mirrors that map into its own policies directory and
 * reloads. Redis holds the truth: a node adds the API files Redis lacks only when it starts or when
 * Redis comes back (an endpoint created while Redis was away is not lost).
 */
export function shareApiEndpoints(registry: RedisRegistry, options: { dir: string; reload: (reason: string) => void; log: Logger }): SharedApiEndpoints {
  const map = registry.sharedMap('api-endpoints', () => queue(pull))
  /** The map as this node last wrote or read it. */
  let known = new Map<string, string>()
  let chain: Promise<void> = Promise.resolve()
  // One step at a time: a pull never interleaves with a push of the same files.
  const queue = (step: () => Promise<void>) =>
    void (chain = chain.then(step).catch((err) => options.log.warn('API endpoints not shared with the other nodes', { error: err instanceof Error ? err.message : String(err) })))

  async function pull(): Promise<void> {
    const remote = await map.all()
    const local = apiFiles(options.dir)
    let changed = false
    for (const name of local.keys())
      if (!remote.has(name)) {
        removeFile(options.dir, name)
        changed = true
      }
    for (const [name, text] of remote) {
      // Only names the API could have made become files: nothing else in the map is written anywhere.
      if (!API_FILE_PATTERN.test(name) || local.get(name) === text) continue
      writeAtomically(options.dir, name, text)
      changed = true
    }
    known = remote
    if (changed) options.reload('cluster')
  }

  async function push(): Promise<void> {
    const local = apiFiles(options.dir)
    for (const [name, text] of local) if (known.get(name) !== text) await map.set(name, text)
    for (const name of known.keys()) if (!local.has(name)) await map.delete(name)
    known = local
  }

  /** After a start or an outage: add what Redis lacks, then take what it has. */
  async function merge(): Promise<void> {
    const remote = await map.all()
    for (const [name, text] of apiFiles(options.dir)) if (!remote.has(name)) await map.set(name, text)
    await pull()
  }

  queue(merge)
  registry.onReconnect(() => queue(merge))
  return { changed: () => queue(push) }
}

/** The API-owned files of the policies directory, by name. */
function apiFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>()
  for (const name of readdirSync(dir)) {
    if (!API_FILE_PATTERN.test(name)) continue
    try {
      files.set(name, readFileSync(join(dir, name), 'utf8'))
    } catch {
      // Removed meanwhile: not there.
    }
  }
  return files
}
