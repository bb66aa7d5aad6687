import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import type { WarrenEvent } from '../events/types.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { RELAY_BATCH_MAX, type EventRelay, type RelayHandlers } from './event-relay.ts'
import { rebinds, urlKey } from './members.ts'
import type { ClusterRegistry, EndpointClaim, MemberHoldings, MemberState, SessionCommand } from './registry.ts'

/** Every key and channel warren uses in Redis starts with this. */
const PREFIX = 'warren:'
const MEMBERS = `${PREFIX}members`
const CHANGES = `${PREFIX}changes`
const leaseKey = (member: string) => `${PREFIX}lease:${member}`
const holdingsKey = (member: string) => `${PREFIX}holdings:${member}`
/** A hash of the holdings, written with them: the others read the holdings again only when it moves. */
const versionKey = (member: string) => `${PREFIX}version:${member}`
const inbox = (member: string) => `${PREFIX}to:${member}`
/** Every node's events, published only while some node listens. */
const EVENTS = `${PREFIX}events`
/**
 * A node with `/events/stream` clients subscribes to this channel of its own: the channels matching
 * `warren:events:listen:*` (PUBSUB CHANNELS) are the nodes that listen, and a node that dies leaves it
 * with its connection, so no key or lease is needed.
 */
const listenChannel = (member: string) => `${PREFIX}events:listen:${member}`
/** The note on `warren:changes` after a node started or stopped listening: the others look again. */
const EVENTS_NOTE = 'events'
/** Event messages sent and not yet answered by Redis beyond which more events are dropped (Redis slow). */
const EVENTS_IN_FLIGHT = 64

/** How long a command waits for the holder's answer. */
const COMMAND_TIMEOUT_MS = 15_000
/** How long the first connection to Redis may take before the node gives up starting. */
const CONNECT_TIMEOUT_MS = 5000

/**
 * Claims a non-pooled URL for `ARGV[1]` (`member\naccount\ntunnel`) for `ARGV[2]` ms and returns its
 * holder. A URL held by a live member for another tunnel stays theirs (split brain: the first claim
 * wins); the same account's same tunnel takes it over (its agent reconnected to this node), and so
 * does anyone once the holder's lease (`ARGV[3]` .. holder) is gone.
 */
const CLAIM_URL = `
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then
  local owner, rest = string.match(v, '^([^\\n]*)\\n(.*)$')
  local mine, myRest = string.match(ARGV[1], '^([^\\n]*)\\n(.*)$')
  if owner ~= mine and rest ~= myRest and redis.call('EXISTS', ARGV[3] .. owner) == 1 then return v end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`

/** Extends a lock's life when `ARGV[1]` (the taker's token) still holds it. */
const RENEW_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`

/** Deletes a lock only when `ARGV[1]` still holds it: a lock that ran out and was taken by another stays theirs. */
const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

/** A lock this node took (RedisRegistry.lock): renewed until released, or until Redis says another holds it. */
export interface ClusterLock {
  /** False once the lock ran out without this node renewing it in time (another node may hold it now). */
  readonly held: boolean
  release(): Promise<void>
}

/** Redis → node: a command for one of this node's sessions, or the answer to one it sent. */
type Inbox = { type: 'command'; from: string; id: number; command: SessionCommand } | { type: 'result'; id: number; error: string }

/** Texts every node shares, by name (see RedisRegistry.sharedMap). */
export interface SharedMap {
  all(): Promise<Map<string, string>>
  get(field: string): Promise<string | undefined>
  set(field: string, value: string): Promise<void>
  delete(field: string): Promise<void>
}

interface Stored {
  link: string
  holdings: MemberHoldings
}

export interface RedisRegistryOptions {
  /** `cluster.redis` */
  url: string
  /** This node's id (`cluster.node`). */
  member: string
  /** Seconds are config; here ms: a node not renewing for this long is gone. */
  leaseMs: number
  /** How long a gone node's agent endpoints stay reserved for their agents to reconnect elsewhere (ms). */
  graceMs: number
  log: Logger
}

/**
 * The registry of several edge nodes sharing a Redis (`cluster.redis`). Each node writes what it holds
 * under `warren:holdings:<node>` and a lease `warren:lease:<node>`, both renewed every third of the
 * lease; a node whose lease ran out is gone (its endpoints stay reserved, offline, until the holdings'
 * longer TTL of lease + reconnect grace ends). Changes are announced on `warren:changes` so the others
 * read at once, and every node also reads the leases on each renewal (holdings only where their
 * version moved). Commands for a session go to the holder's
 * channel `warren:to:<node>` and come back on the asker's.
 *
 * Redis going away does not stop a node: it keeps the last view it read and serves it, takes binds
 * locally, and writes everything again when Redis is back (and subscribes again).
 */
export class RedisRegistry implements ClusterRegistry, EventRelay {
  readonly self: string
  readonly #o: RedisRegistryOptions
  readonly #redis: Redis
  readonly #sub: Redis
  readonly #listeners = new Set<() => void>()
  readonly #pending = new Map<number, (error: string) => void>()
  /** What each other member stored, and when this node last saw it there. */
  readonly #seen = new Map<string, { stored: Stored; alive: boolean; version: string; at: number }>()
  #handler: (command: SessionCommand) => Promise<string> = async () => 'this node runs no commands'
  readonly #maps = new Map<string, () => void>()
  /** Renewal timers of the locks this node holds. */
  readonly #lockTimers = new Set<ReturnType<typeof setInterval>>()
  readonly #backListeners = new Set<() => void>()
  /** The shared values this node uses, written again if Redis comes back empty. */
  readonly #sharedValues = new Map<string, string>()
  #lost: (claim: EndpointClaim, holder: string) => void = () => {}
  #link = ''
  #mine: MemberHoldings = { endpoints: [], sessions: [] }
  #written = ''
  #view: MemberState[] = []
  #viewText = ''
  #timer: ReturnType<typeof setInterval> | undefined
  #writing: Promise<void> | undefined
  #again = false
  #reading: ReturnType<typeof setTimeout> | undefined
  #readDue = 0
  #up = true
  #closing = false
  #nextId = 0
  #relay: RelayHandlers | undefined
  /** This node has stream clients (subscribed to the events and its listen channel). */
  #listening = false
  /** Another node listens: this node publishes its events. */
  #wanted = false
  #eventsInFlight = 0

  private constructor(options: RedisRegistryOptions, redis: Redis, sub: Redis) {
    this.self = options.member
    this.#o = options
    this.#redis = redis
    this.#sub = sub
  }

  /** Connects to Redis (both the command and the subscriber connection); fails with ERR_WARREN_7020. */
  static async connect(options: RedisRegistryOptions): Promise<RedisRegistry> {
    // Commands fail at once while Redis is away (the node serves what it knows and writes again on
    // return) instead of queueing without bound; the subscriber queues its (re)subscriptions.
    const retryStrategy = (attempt: number) => Math.min(100 * attempt, 1000)
    const redis = new Redis(options.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy })
    // The subscriber resubscribes itself after a reconnect: ioredis' own resubscription leaves its promise
    // unhandled when the connection drops again meanwhile (ioredis 6 event_handler), which would end the process.
    const sub = new Redis(options.url, { lazyConnect: true, maxRetriesPerRequest: null, retryStrategy, autoResubscribe: false })
    // ioredis reports every failed reconnect as an error event: the node logs Redis' state itself.
    redis.on('error', () => {})
    sub.on('error', () => {})
    try {
      await within(CONNECT_TIMEOUT_MS, Promise.all([redis.connect(), sub.connect()]))
    } catch (err) {
      redis.disconnect()
      sub.disconnect()
      throw new WarrenError(CODES.CLUSTER_REDIS_UNREACHABLE, `Cannot reach Redis at ${redactUrl(options.url)} (cluster.redis): ${err instanceof Error ? err.message : String(err)}`)
    }
    const registry = new RedisRegistry(options, redis, sub)
    await sub.subscribe(CHANGES, inbox(options.member))
    sub.on('message', (channel: string, message: string) => registry.#message(channel, message))
    redis.on('close', () => registry.#down())
    redis.on('ready', () => registry.#back())
    // Announcements sent while the subscriber was away are lost: read once it has subscribed again.
    let subDown = false
    sub.on('close', () => (subDown = true))
    sub.on('ready', () => {
      if (!subDown) return
      subDown = false
      sub.subscribe(CHANGES, inbox(options.member), ...registry.#eventChannels()).then(
        () => {
          registry.#readSoon(0)
          if (registry.#listening) registry.#announceListening()
        },
        () => {},
      )
    })
    return registry
  }

  /**
   * A value every node shares, made by the first node that needs it (`SET NX`): the cluster's
   * link certificate and secret, the agents' resume-cookie secret.
   */
  async shared(name: string, make: () => Promise<string>): Promise<string> {
    const key = `${PREFIX}shared:${name}`
    let value = await this.#redis.get(key)
    if (value === null) {
      await this.#redis.set(key, await make(), 'NX')
      value = (await this.#redis.get(key))!
    }
    this.#sharedValues.set(key, value)
    return value
  }

  /**
   * A map of texts every node shares (a Redis hash `warren:map:<name>`); a change is announced on
   * `warren:changes` and `changed` runs on every other node. Operations reject while Redis is away.
   */
  sharedMap(name: string, changed: () => void): SharedMap {
    const key = `${PREFIX}map:${name}`
    const note = `map:${name}`
    this.#maps.set(note, changed)
    return {
      all: async () => new Map(Object.entries(await this.#redis.hgetall(key))),
      get: async (field) => (await this.#redis.hget(key, field)) ?? undefined,
      set: async (field, value) => void (await this.#redis.multi().hset(key, field, value).publish(CHANGES, note).exec()),
      delete: async (field) => void (await this.#redis.multi().hdel(key, field).publish(CHANGES, note).exec()),
    }
  }

  /**
   * Takes the lock `warren:lock:<name>` for `ttlMs` (SET NX PX with a random token naming this node), or
   * resolves undefined while another node holds it. The lock is renewed every third of `ttlMs` until
   * released (compare-and-delete: never another node's); a node killed while holding it loses it when
   * it runs out. `lost` runs when a renewal finds the lock gone or taken. Rejects while Redis is away.
   */
  async lock(name: string, ttlMs: number, lost: () => void): Promise<ClusterLock | undefined> {
    const key = `${PREFIX}lock:${name}`
    const token = `${this.self}/${newSecret()}`
    if ((await this.#redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') return undefined
    let held = true
    const timer = setInterval(() => {
      this.#redis.eval(RENEW_LOCK, 1, key, token, ttlMs).then(
        (renewed) => {
          if (renewed === 1 || !held) return
          held = false
          this.#stopRenewing(timer)
          lost()
        },
        // Redis away: the next renewal tries again; the lock runs out by itself if Redis stays away.
        () => {},
      )
    }, Math.max(50, Math.floor(ttlMs / 3)))
    this.#lockTimers.add(timer)
    return {
      get held() {
        return held
      },
      release: async () => {
        held = false
        this.#stopRenewing(timer)
        await this.#redis.eval(RELEASE_LOCK, 1, key, token)
      },
    }
  }

  #stopRenewing(timer: ReturnType<typeof setInterval>): void {
    clearInterval(timer)
    this.#lockTimers.delete(timer)
  }

  /** The node holding the lock `name` (from its token), or undefined when it is free. */
  async lockHolder(name: string): Promise<string | undefined> {
    const token = await this.#redis.get(`${PREFIX}lock:${name}`)
    return token === null ? undefined : token.slice(0, token.lastIndexOf('/'))
  }

  /** A text under `warren:<name>` that Redis drops after `ttlMs` (rejects while Redis is away). */
  async putExpiring(name: string, value: string, ttlMs: number): Promise<void> {
    await this.#redis.set(`${PREFIX}${name}`, value, 'PX', ttlMs)
  }

  async getValue(name: string): Promise<string | undefined> {
    return (await this.#redis.get(`${PREFIX}${name}`)) ?? undefined
  }

  async deleteValue(name: string): Promise<void> {
    await this.#redis.del(`${PREFIX}${name}`)
  }

  /** Runs `listener` each time Redis is reachable again after it went away. */
  onReconnect(listener: () => void): void {
    this.#backListeners.add(listener)
  }

  /**
   * Starts renewing this node's lease; `link` is the address the others dial. A lease of this id
   * still there is a killed predecessor's (it runs out within a lease: wait for it) or a live
   * duplicate's (it is renewed: refused, ERR_WARREN_7026).
   */
  async start(link: string): Promise<void> {
    const deadline = Date.now() + 2 * this.#o.leaseMs
    if ((await this.#redis.exists(leaseKey(this.self))) === 1) {
      this.#o.log.warn('a node with this id held a lease until moments ago; waiting for it to run out', { node: this.self, lease_ms: this.#o.leaseMs })
      while ((await this.#redis.exists(leaseKey(this.self))) === 1) {
        if (Date.now() > deadline)
          throw new WarrenError(CODES.CLUSTER_NODE_ID_IN_USE, `Another node with the id "${this.self}" is running (it keeps renewing its lease in Redis); give each node its own cluster.node`)
        await Bun.sleep(100)
      }
    }
    this.#link = link
    await this.#write()
    await this.#read()
    await this.#checkListeners()
    // Who listens to events is read on each renewal too: a node that died stops listening with its connection, unannounced.
    this.#timer = setInterval(() => void this.#write().then(() => Promise.all([this.#read(), this.#checkListeners()])), Math.max(100, Math.floor(this.#o.leaseMs / 3)))
  }

  publish(state: MemberHoldings): void {
    this.#mine = state
    // This node's own sessions decide which of two claims of one reconnected agent is current: now, not after Redis answers.
    this.#recompute()
    if (JSON.stringify(state) !== this.#written) void this.#write()
  }

  others(): readonly MemberState[] {
    return this.#view
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  /** Called when a non-pooled URL this node published is held by another node for another agent (split brain). */
  onLost(handler: (claim: EndpointClaim, holder: string) => void): void {
    this.#lost = handler
  }

  command(member: string, command: SessionCommand): Promise<string> {
    const id = ++this.#nextId
    return new Promise<string>((resolve) => {
      const timer = setTimeout(() => this.#pending.get(id)?.(`node ${member} did not answer`), COMMAND_TIMEOUT_MS)
      this.#pending.set(id, (error) => {
        clearTimeout(timer)
        this.#pending.delete(id)
        resolve(error)
      })
      this.#redis.publish(inbox(member), JSON.stringify({ type: 'command', from: this.self, id, command } satisfies Inbox)).then(
        (receivers) => receivers === 0 && this.#pending.get(id)?.(`node ${member} is gone`),
        () => this.#pending.get(id)?.('Redis is unreachable; the node holding the session cannot be asked'),
      )
    })
  }

  onCommand(handler: (command: SessionCommand) => Promise<string>): void {
    this.#handler = handler
  }

  get reachable(): boolean {
    return this.#up
  }

  onRelay(handlers: RelayHandlers): void {
    this.#relay = handlers
    if (this.#wanted) handlers.wanted(true)
  }

  listen(on: boolean): void {
    if (on === this.#listening) return
    this.#listening = on
    const channels = [EVENTS, listenChannel(this.self)]
    // The subscriber queues (un)subscriptions while Redis is away and sends them in order.
    void (on ? this.#sub.subscribe(...channels) : this.#sub.unsubscribe(...channels)).then(
      () => this.#announceListening(),
      () => {},
    )
  }

  send(batch: readonly WarrenEvent[]): boolean {
    if (!this.#up || this.#eventsInFlight >= EVENTS_IN_FLIGHT) return false
    for (let i = 0; i < batch.length; i += RELAY_BATCH_MAX) {
      this.#eventsInFlight++
      const done = () => void this.#eventsInFlight--
      this.#redis.publish(EVENTS, JSON.stringify({ node: this.self, events: batch.slice(i, i + RELAY_BATCH_MAX) })).then(done, done)
    }
    return true
  }

  /** The channels this node's event listening adds to its subscriptions. */
  #eventChannels(): string[] {
    return this.#listening ? [EVENTS, listenChannel(this.self)] : []
  }

  #announceListening(): void {
    this.#redis.publish(CHANGES, EVENTS_NOTE).catch(() => {})
  }

  /** Asks Redis which nodes listen to events; this node publishes its own while another one does. */
  async #checkListeners(): Promise<void> {
    if (this.#closing) return
    let channels: unknown[]
    try {
      channels = await this.#redis.pubsub('CHANNELS', listenChannel('*'))
    } catch {
      return
    }
    const mine = listenChannel(this.self)
    const wanted = channels.some((c) => c !== mine)
    if (wanted === this.#wanted) return
    this.#wanted = wanted
    this.#relay?.wanted(wanted)
  }

  /** Leaving on purpose: the lease goes at once (the others see this node gone); the holdings stay reserved for the grace. */
  close(): void {
    this.#closing = true
    clearInterval(this.#timer)
    clearTimeout(this.#reading)
    // Locks still held run out by themselves (a node leaving mid-order lets another take over after the TTL).
    for (const timer of this.#lockTimers) clearInterval(timer)
    const done = () => {
      this.#redis.disconnect()
      this.#sub.disconnect()
    }
    this.#redis.multi().del(leaseKey(this.self)).publish(CHANGES, this.self).exec().then(done, done)
  }

  /** Writes lease, holdings and URL claims; one write at a time, the latest state wins. */
  #write(): Promise<void> {
    if (this.#writing) {
      this.#again = true
      return this.#writing
    }
    this.#writing = this.#writeOnce().finally(() => {
      this.#writing = undefined
      if (this.#again) {
        this.#again = false
        void this.#write()
      }
    })
    return this.#writing
  }

  async #writeOnce(): Promise<void> {
    if (!this.#link || this.#closing) return
    const state = this.#mine
    const text = JSON.stringify(state)
    const storedText = JSON.stringify({ link: this.#link, holdings: state } satisfies Stored)
    const lease = this.#o.leaseMs
    // Only endpoints with a live agent contend for their URL: an offline reservation never takes it back.
    const contended = state.endpoints.filter((e) => !e.pooling && e.session !== undefined)
    const batch = this.#redis
      .multi()
      .set(leaseKey(this.self), this.#link, 'PX', lease)
      .set(holdingsKey(this.self), storedText, 'PX', lease + this.#o.graceMs)
      .set(versionKey(this.self), Bun.hash(storedText).toString(36), 'PX', lease + this.#o.graceMs)
      .sadd(MEMBERS, this.self)
    // exec() answers in order: lease, holdings, version, members, then one per claim.
    const firstClaim = 4
    for (const e of contended) batch.eval(CLAIM_URL, 1, `${PREFIX}url:${urlKey(e)}`, `${this.self}\n${e.account}\n${e.tunnel}`, lease, `${PREFIX}lease:`)
    if (text !== this.#written) batch.publish(CHANGES, this.self)
    let results: [Error | null, unknown][] | null
    try {
      results = await batch.exec()
    } catch {
      return
    }
    if (!results) return
    this.#written = text
    for (const [i, e] of contended.entries()) {
      const holder = String(results[firstClaim + i]?.[1] ?? '')
      const owner = holder.split('\n')[0]!
      if (holder && owner !== this.self) {
        this.#o.log.warn('another node holds this URL; its agent endpoint here is stopped', { url: `${e.url.scheme}://${e.url.host}`, tunnel: e.tunnel, node: owner, code: CODES.CLUSTER_URL_TAKEN })
        this.#lost(e, owner)
      }
    }
  }

  /**
   * Reads every member's lease and holdings version, and the holdings only where the version moved (a
   * renewal costs two small reads per member). A member missing from Redis is kept for one lease (Redis
   * may have restarted empty).
   */
  async #read(): Promise<void> {
    if (this.#closing) return
    let ids: string[]
    let heads: [Error | null, unknown][] | null
    try {
      ids = (await this.#redis.smembers(MEMBERS)).filter((id) => id !== this.self)
      const batch = this.#redis.multi()
      for (const id of ids) batch.exists(leaseKey(id)).get(versionKey(id))
      heads = await batch.exec()
    } catch {
      return
    }
    if (!heads) return
    const now = Date.now()
    const gone: string[] = []
    const stale: { id: string; alive: boolean; version: string }[] = []
    let moved = false
    for (const [i, id] of ids.entries()) {
      const version = heads[2 * i + 1]?.[1]
      if (typeof version !== 'string') {
        gone.push(id)
        continue
      }
      const alive = heads[2 * i]?.[1] === 1
      const known = this.#seen.get(id)
      if (known?.version === version) {
        if (known.alive !== alive) moved = true
        known.alive = alive
        known.at = now
        continue
      }
      stale.push({ id, alive, version })
    }
    if (stale.length) {
      let texts: (string | null)[]
      try {
        texts = await this.#redis.mget(stale.map((m) => holdingsKey(m.id)))
      } catch {
        return
      }
      for (const [i, m] of stale.entries()) {
        const text = texts[i]
        if (typeof text !== 'string') {
          gone.push(m.id)
          continue
        }
        try {
          this.#seen.set(m.id, { stored: JSON.parse(text) as Stored, alive: m.alive, version: m.version, at: now })
        } catch {
          gone.push(m.id)
        }
      }
    }
    for (const [id, m] of this.#seen)
      if ((!ids.includes(id) || gone.includes(id)) && now - m.at > this.#o.leaseMs) {
        this.#seen.delete(id)
        moved = true
      }
    // Members whose holdings expired: a live member adds itself back on its next renewal.
    if (gone.length) this.#redis.srem(MEMBERS, ...gone).catch(() => {})
    if (moved || stale.length) this.#recompute()
  }

  /**
   * The others as this node serves them: a gone member's sessions are over and its endpoints offline
   * (reserved), unless another member bound them again; an agent that reconnected elsewhere (the same
   * session id, a later connection) leaves its claim on the member it left offline.
   */
  #recompute(): void {
    const newest = new Map<string, { member: string; at: number }>()
    const consider = (member: string, holdings: MemberHoldings) => {
      for (const s of holdings.sessions) if ((newest.get(s.id)?.at ?? -1) < s.connectedAt) newest.set(s.id, { member, at: s.connectedAt })
    }
    consider(this.self, this.#mine)
    for (const [id, m] of this.#seen) if (m.alive) consider(id, m.stored.holdings)
    const current = (member: string, session: string | undefined) => session !== undefined && newest.get(session)?.member === member
    const liveClaims: EndpointClaim[] = [...this.#mine.endpoints]
    for (const m of this.#seen.values()) if (m.alive) liveClaims.push(...m.stored.holdings.endpoints)
    const view: MemberState[] = []
    for (const [member, m] of [...this.#seen].sort(([a], [b]) => a.localeCompare(b))) {
      const h = m.stored.holdings
      if (m.alive) {
        const endpoints = h.endpoints.map((e) => (current(member, e.session) ? e : { ...e, session: undefined }))
        view.push({ member, link: m.stored.link, alive: true, endpoints, sessions: h.sessions.filter((s) => current(member, s.id)) })
        continue
      }
      const endpoints = h.endpoints.filter((old) => !liveClaims.some((e) => rebinds(e, old))).map((e) => ({ ...e, session: undefined }))
      if (endpoints.length) view.push({ member, link: m.stored.link, alive: false, endpoints, sessions: [] })
    }
    const text = JSON.stringify(view)
    if (text === this.#viewText) return
    this.#viewText = text
    this.#view = view
    for (const listener of this.#listeners) listener()
  }

  #message(channel: string, message: string): void {
    if (channel === EVENTS) return this.#receiveEvents(message)
    if (channel === CHANGES) {
      if (message === EVENTS_NOTE) return void this.#checkListeners()
      if (message.startsWith('map:')) this.#maps.get(message)?.()
      else if (message !== this.self) this.#readSoon(0)
      return
    }
    let m: Inbox
    try {
      m = JSON.parse(message) as Inbox
    } catch {
      return
    }
    if (m.type === 'result') return void this.#pending.get(m.id)?.(m.error)
    const reply = (error: string) => this.#redis.publish(inbox(m.from), JSON.stringify({ type: 'result', id: m.id, error } satisfies Inbox)).catch(() => {})
    void this.#handler(m.command).then(reply, (err) => reply(err instanceof Error ? err.message : String(err)))
  }

  #receiveEvents(message: string): void {
    if (!this.#listening) return
    let m: { node: string; events: WarrenEvent[] }
    try {
      m = JSON.parse(message) as { node: string; events: WarrenEvent[] }
    } catch {
      return
    }
    // This node's own events reach its streams from its bus.
    if (m.node !== this.self && Array.isArray(m.events)) this.#relay?.events(m.events)
  }

  /** Coalesces reads: a burst of change messages makes one read; an earlier read replaces a later one. */
  #readSoon(ms: number): void {
    const due = Date.now() + ms
    if (this.#reading && this.#readDue <= due) return
    clearTimeout(this.#reading)
    this.#readDue = due
    this.#reading = setTimeout(() => {
      this.#reading = undefined
      void this.#read()
    }, ms)
  }

  #down(): void {
    if (!this.#up || this.#closing) return
    this.#up = false
    this.#o.log.warn('Redis is unreachable; serving what this node knows, new binds stay on this node until it returns', { code: CODES.CLUSTER_REDIS_LOST })
    this.#relay?.reachable(false)
    // Nothing could be published: build no events for the others until Redis says again who listens.
    if (this.#wanted) {
      this.#wanted = false
      this.#relay?.wanted(false)
    }
  }

  #back(): void {
    if (this.#up || this.#closing) return
    this.#up = true
    this.#o.log.info('Redis is reachable again; publishing this node', {})
    // Redis may have restarted empty: write everything again, and read once the others had a renewal to do the same.
    this.#written = ''
    void this.#write()
    // …and without the shared values a node joining now would make a new link CA the running nodes reject.
    for (const [key, value] of this.#sharedValues) void this.#redis.set(key, value, 'NX').catch(() => {})
    this.#readSoon(Math.floor(this.#o.leaseMs / 3) + 100)
    for (const listener of this.#backListeners) listener()
    this.#relay?.reachable(true)
    void this.#checkListeners()
  }
}


/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

/** A random secret, base64url (the cluster's link secret, the resume-cookie secret). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url')
}
