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
  /** A non-pooled URL's key → the member holding it and for which agent tunnel (`account\ntunnel`). */
  readonly #urls = new Map<string, { member: string; tunnel: string }>()
  readonly #graceMs: number
  readonly #onChange: () => void
  readonly #onLost: (member: string, claim: EndpointClaim, holder: string) => void

  constructor(options: { graceMs: number; onChange: () => void; onLost?: (member: string, claim: EndpointClaim, holder: string) => void }) {
    this.#graceMs = options.graceMs
    this.#onChange = options.onChange
    this.#onLost = options.onLost ?? (() => {})
  }

  all(): MemberState[] {
    return [...this.#members.values()].map((m) => m.state)
  }

  update(member: string, link: string, holdings: MemberHoldings): void {
    const lost = this.#claimUrls(member, holdings.endpoints)
    const endpoints = lost.length ? holdings.endpoints.filter((e) => !lost.some((l) => l.claim === e)) : holdings.endpoints
    this.#members.set(member, { state: { member, link, alive: true, sessions: holdings.sessions, endpoints }, expiry: undefined })
    for (const [id, m] of this.#members) {
      if (m.state.alive) continue
      const left = m.state.endpoints.filter((old) => !holdings.endpoints.some((e) => rebinds(e, old)))
      if (left.length !== m.state.endpoints.length) m.state = { ...m.state, endpoints: left }
      if (left.length === 0) this.#drop(id)
    }
    this.#onChange()
    for (const l of lost) this.#onLost(member, l.claim, l.holder)
  }

  /**
   * Settles non-pooled URLs between live members, as the Redis registry's claim does between nodes:
   * the first live member to publish a URL for an agent keeps it; another tunnel binding the same URL
   * on another member at the same instant (each worker checked its own view, one message behind)
   * loses, and its worker is told. The same account's same tunnel takes the URL over (its agent
   * reconnected to another worker), and a URL whose holder died is free. Returns the losing claims.
   */
  #claimUrls(member: string, endpoints: readonly EndpointClaim[]): { claim: EndpointClaim; holder: string }[] {
    const lost: { claim: EndpointClaim; holder: string }[] = []
    const kept = new Set<string>()
    for (const e of endpoints) {
      // Only endpoints with a live agent contend for their URL: an offline reservation never takes it back.
      if (e.pooling || e.session === undefined) continue
      const key = urlKey(e)
      const tunnel = `${e.account}\n${e.tunnel}`
      const holder = this.#urls.get(key)
      if (holder && holder.member !== member && holder.tunnel !== tunnel && this.#members.get(holder.member)?.state.alive) {
        lost.push({ claim: e, holder: holder.member })
        continue
      }
      this.#urls.set(key, { member, tunnel })
      kept.add(key)
    }
    for (const [key, holder] of this.#urls) if (holder.member === member && !kept.has(key)) this.#urls.delete(key)
    return lost
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
    for (const [key, holder] of this.#urls) if (holder.member === member) this.#urls.delete(key)
  }
}

/** `next` takes over `old`: the same tunnel of the same account, or the same URL. */
export function rebinds(next: EndpointClaim, old: EndpointClaim): boolean {
  if (next.account !== old.account) return false
  return next.tunnel === old.tunnel || sameUrl(next, old)
}

/** A URL's identity for settling claims: public URLs are one namespace, internal ones one per account. */
export function urlKey(e: EndpointClaim): string {
  return `${e.url.binding === 'internal' ? `${e.account}|` : ''}${e.url.scheme}://${e.url.host}:${e.url.port ?? ''}`
}

function sameUrl(a: EndpointClaim, b: EndpointClaim): boolean {
  return a.url.scheme === b.url.scheme && a.url.host === b.url.host && a.url.port === b.url.port && a.url.binding === b.url.binding
}
