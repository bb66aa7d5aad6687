import type { EndpointClaim, MemberHoldings, MemberState } from './registry.ts'

/**
 * The members' holdings as the local registry's hub (the supervisor) keeps them, with their leases:
 * a live member's entry lasts while it is connected; a member that died keeps its endpoints reserved
 * (offline) for `graceMs`, so its agents can reconnect to any member and get their URLs back. An
 * endpoint that another member binds again (same account and tunnel id, or the same URL) leaves the
 * dead member's reservation at once.
 */
export class MemberTable {
  readonly #members = new Map<string, { state: MemberState; expiry: ReturnType<typeof setTimeout> | undefined }>()
  readonly #graceMs: number
  readonly #onChange: () => void

  constructor(options: { graceMs: number; onChange: () => void }) {
    this.#graceMs = options.graceMs
    this.#onChange = options.onChange
  }

  all(): MemberState[] {
    return [...this.#members.values()].map((m) => m.state)
  }

  update(member: string, link: string, holdings: MemberHoldings): void {
    this.#members.set(member, { state: { member, link, alive: true, ...holdings }, expiry: undefined })
    for (const [id, m] of this.#members) {
      if (m.state.alive) continue
      const left = m.state.endpoints.filter((old) => !holdings.endpoints.some((e) => rebinds(e, old)))
      if (left.length !== m.state.endpoints.length) m.state = { ...m.state, endpoints: left }
      if (left.length === 0) this.#drop(id)
    }
    this.#onChange()
  }

  /** The member's process ended: its sessions are gone, its endpoints stay reserved for the grace period. */
  gone(member: string): void {
    const m = this.#members.get(member)
    if (!m || !m.state.alive) return
    m.state = { ...m.state, alive: false, sessions: [], endpoints: m.state.endpoints.map((e) => ({ ...e, session: undefined })) }
    if (m.state.endpoints.length === 0) this.#drop(member)
    else {
      m.expiry = setTimeout(() => {
        this.#drop(member)
        this.#onChange()
      }, this.#graceMs)
      m.expiry.unref?.()
    }
    this.#onChange()
  }

  clear(): void {
    for (const id of [...this.#members.keys()]) this.#drop(id)
  }

  #drop(member: string): void {
    clearTimeout(this.#members.get(member)?.expiry)
    this.#members.delete(member)
  }
}

/** `next` takes over `old`: the same tunnel of the same account, or the same URL. */
export function rebinds(next: EndpointClaim, old: EndpointClaim): boolean {
  if (next.account !== old.account) return false
  return next.tunnel === old.tunnel || sameUrl(next, old)
}

function sameUrl(a: EndpointClaim, b: EndpointClaim): boolean {
  return a.url.scheme === b.url.scheme && a.url.host === b.url.host && a.url.port === b.url.port && a.url.binding === b.url.binding
}
