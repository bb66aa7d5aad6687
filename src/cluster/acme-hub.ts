import type { AcmeShare, SharedCertificate } from '../acme/share.ts'

/** Worker → supervisor: one operation on the ACME state the workers share (answered by `id`). */
export type AcmeOp =
  | { op: 'account'; id: string; value: string }
  | { op: 'certificate'; name: string }
  | { op: 'certificates' }
  | { op: 'save'; name: string; value: string }
  | { op: 'lock'; name: string }
  | { op: 'locked'; name: string }
  | { op: 'release'; name: string }
  | { op: 'put-challenge'; key: string; value: string }
  | { op: 'challenge'; key: string }
  | { op: 'delete-challenge'; key: string }

/**
 * The ACME state of `warren serve --workers N`, kept by the supervisor in memory: the account key per
 * directory (the first worker's), the certificates as JSON texts, the order locks and the challenge
 * answers. A lock and the answers a worker published live as long as its connection to the supervisor:
 * a worker that dies mid-order frees its lock at once and another worker orders.
 */
export class AcmeHub {
  readonly #accounts = new Map<string, string>()
  readonly #certificates = new Map<string, string>()
  /** name → the member holding its order lock. */
  readonly #locks = new Map<string, string>()
  /** key → answer and the member that published it. */
  readonly #challenges = new Map<string, { value: string; member: string }>()

  /** Runs `op` for `member`; `changed` is true when every worker should look at the certificates again. */
  handle(member: string, op: AcmeOp): { value: unknown; changed?: boolean } {
    switch (op.op) {
      case 'account': {
        if (!this.#accounts.has(op.id)) this.#accounts.set(op.id, op.value)
        return { value: this.#accounts.get(op.id) }
      }
      case 'certificate':
        return { value: this.#certificates.get(op.name) }
      case 'certificates':
        return { value: [...this.#certificates.values()] }
      case 'save':
        this.#certificates.set(op.name, op.value)
        return { value: true, changed: true }
      case 'lock': {
        const holder = this.#locks.get(op.name)
        if (holder !== undefined && holder !== member) return { value: false }
        this.#locks.set(op.name, member)
        return { value: true }
      }
      case 'locked':
        return { value: this.#locks.has(op.name) }
      case 'release':
        if (this.#locks.get(op.name) === member) this.#locks.delete(op.name)
        return { value: true }
      case 'put-challenge':
        this.#challenges.set(op.key, { value: op.value, member })
        return { value: true }
      case 'challenge':
        return { value: this.#challenges.get(op.key)?.value }
      case 'delete-challenge':
        this.#challenges.delete(op.key)
        return { value: true }
    }
  }

  /** A worker's connection ended: its locks and challenge answers go; whether any lock went (the others look again). */
  gone(member: string): boolean {
    let freed = false
    for (const [name, holder] of this.#locks)
      if (holder === member) {
        this.#locks.delete(name)
        freed = true
      }
    for (const [key, c] of this.#challenges) if (c.member === member) this.#challenges.delete(key)
    return freed
  }
}

/** What a worker needs from its link to the supervisor (LocalRegistry implements it). */
export interface AcmeHubClient {
  acme(op: AcmeOp): Promise<unknown>
  onAcmeChange(listener: () => void): void
}

/**
 * The ACME share of a worker: the same interface as the nodes' Redis share (src/cluster/acme-share.ts),
 * answered by the supervisor. The lock needs no renewal: it lives as long as the worker's connection.
 */
export function localAcmeShare(hub: AcmeHubClient): AcmeShare {
  const parse = (text: unknown): SharedCertificate | undefined => {
    if (typeof text !== 'string') return undefined
    try {
      return JSON.parse(text) as SharedCertificate
    } catch {
      return undefined
    }
  }
  return {
    accountKey: async (id, make) => String(await hub.acme({ op: 'account', id, value: await make() })),
    certificate: async (name) => parse(await hub.acme({ op: 'certificate', name })),
    certificates: async () => ((await hub.acme({ op: 'certificates' })) as string[]).flatMap((t) => parse(t) ?? []),
    save: async (c) => void (await hub.acme({ op: 'save', name: c.meta.name, value: JSON.stringify(c) })),
    onChange: (listener) => hub.onAcmeChange(listener),
    lock: async (name) => {
      if (!(await hub.acme({ op: 'lock', name }))) return undefined
      return { held: true, release: async () => void (await hub.acme({ op: 'release', name })) }
    },
    locked: async (name) => (await hub.acme({ op: 'locked', name })) === true,
    putChallenge: async (key, value) => void (await hub.acme({ op: 'put-challenge', key, value })),
    challenge: async (key) => {
      const value = await hub.acme({ op: 'challenge', key })
      return typeof value === 'string' ? value : undefined
    },
    deleteChallenge: async (key) => void (await hub.acme({ op: 'delete-challenge', key })),
  }
}
