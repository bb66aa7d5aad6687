import type { AcmeShare, SharedCertificate } from '../acme/share.ts'
import { CODES } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import type { RedisRegistry } from './redis-registry.ts'

/** A certificate order lock lives this many `cluster.lease`s: a node killed mid-order lets another order within it. */
export const ACME_LOCK_LEASES = 3

/** How long a published challenge answer lives if the edge that published it dies before removing it. */
const CHALLENGE_TTL_MS = 10 * 60_000

/**
 * The ACME share of nodes with `cluster.redis`, on the node's registry connection: the account key in
 * `warren:shared:acme-account:<directory>` (made once, SET NX), certificates in the hash
 * `warren:map:acme-certificates` (a change is announced on `warren:changes`), order locks
 * `warren:lock:acme:<name>` that live `lockMs` and are renewed while the order runs, and challenge
 * answers `warren:acme-challenge:<type>:<name>…` for ten minutes at most.
 */
export function redisAcmeShare(registry: RedisRegistry, options: { lockMs: number; log: Logger }): AcmeShare {
  const listeners = new Set<() => void>()
  const map = registry.sharedMap('acme-certificates', () => {
    for (const listener of listeners) listener()
  })
  const parse = (text: string | undefined): SharedCertificate | undefined => {
    if (text === undefined) return undefined
    try {
      const c = JSON.parse(text) as SharedCertificate
      return typeof c.cert === 'string' && typeof c.key === 'string' && typeof c.meta?.name === 'string' ? c : undefined
    } catch {
      return undefined
    }
  }
  return {
    accountKey: (id, make) => registry.shared(`acme-account:${id}`, make),
    certificate: async (name) => parse(await map.get(name)),
    certificates: async () => [...(await map.all()).values()].flatMap((text) => parse(text) ?? []),
    save: (c) => map.set(c.meta.name, JSON.stringify(c)),
    onChange: (listener) => void listeners.add(listener),
    lock: (name) =>
      registry.lock(`acme:${name}`, options.lockMs, () =>
        options.log.warn('the certificate order lock ran out while this node ordered; another node may order the name too', { name, code: CODES.CLUSTER_ACME_LOCK_LOST }),
      ),
    locked: async (name) => (await registry.lockHolder(`acme:${name}`)) !== undefined,
    putChallenge: (key, value) => registry.putExpiring(`acme-challenge:${key}`, value, CHALLENGE_TTL_MS),
    challenge: (key) => registry.getValue(`acme-challenge:${key}`),
    deleteChallenge: (key) => registry.deleteValue(`acme-challenge:${key}`),
  }
}
