import type { createSecureContext } from 'node:tls'
import { X509Certificate } from 'node:crypto'
import { normalizeName, wildcardFor } from '../certs/match.ts'
import { parseCertPair, type CertPair } from '../certs/pair.ts'
import type { EndpointTable } from '../endpoints/table.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { log as rootLog, type Logger } from '../lib/log.ts'
import { Dns01Hook } from './challenges/dns-01.ts'
import { Http01Responder } from './challenges/http-01.ts'
import { TlsAlpn01Responder } from './challenges/tls-alpn-01.ts'
import { ACME_CODES } from './codes.ts'
import { configureAcmeHttp, createKey, issueCertificate, registerAccount, type AccountOptions, type ChallengeType, type Solver } from './issue.ts'
import { isClaimed, qualifiesForPublicCert, wantedNames, type ClaimSources } from './names.ts'
import { currentScope, formatProblem, withProblemScope, type ProblemScope } from './problem.ts'
import { MAX_TIMER_MS, renewAt, retryDelay } from './schedule.ts'
import type { AcmeSettings } from './settings.ts'
import { http01Key, tlsAlpn01Key, type AcmeShare, type OrderLock, type SharedCertificate } from './share.ts'
import { accountId, type AcmeStore, type CertMeta } from './store.ts'

/** What the manager needs from the certificate store (CertStore implements it). */
export interface CertSink {
  select(name: string): CertPair | undefined
  add(id: string, pair: CertPair): void
  onChange(listener: () => void): () => void
}

/** What the manager needs from the endpoint store (EndpointStore implements it). */
export interface EndpointSource {
  readonly current: EndpointTable
  onChange(listener: (table: EndpointTable) => void): () => void
}

/** Runs one ACME order; tests replace it. */
export type IssueFn = (name: string) => Promise<{ cert: string; key: string }>

export interface AcmeManagerOptions {
  settings: AcmeSettings
  store: AcmeStore
  certs: CertSink
  endpoints: EndpointSource
  /** Domains accounts own (read on every reconcile, so config reloads can change them). */
  accountDomains: () => readonly string[]
  /** Port a URL without one means on the TLS listener. */
  httpsPort: number
  /** Names the edge serves itself (the agent port's). */
  ownNames: readonly string[]
  signal: AbortSignal
  logger?: Logger
  /** Replaces the ACME protocol run (tests). */
  issue?: IssueFn
  /** Orders running at once. */
  maxConcurrent?: number
  /**
   * Several edges sharing one set of certificates (`cluster.redis`): one account, one order per name
   * under a lock, every edge serves what any ordered; `certs/acme/` stays this edge's cache.
   */
  share?: AcmeShare
  random?: () => number
}

/** One name the manager looks after. */
interface Entry {
  name: string
  meta: CertMeta
  pair: CertPair | undefined
  /** Renew and retry automatically (something still claims the name). */
  wanted: boolean
  timer: ReturnType<typeof setTimeout> | undefined
  running: Promise<CertPair | undefined> | undefined
  failures: number
  /** Backing off until then (ms since epoch); 0 when not. */
  retryAt: number
}

/** On-demand orders for names not known before: a burst of this many, then one per minute. */
const ON_DEMAND_BURST = 10
const ON_DEMAND_REFILL_MS = 60_000

/** How long a node that answered another node's TLS-ALPN-01 validation keeps the challenge certificate. */
const REMOTE_CHALLENGE_MS = 30_000
/** How often a node waiting for another node's order looks again (announcements wake it sooner). */
const SHARE_POLL_MS = 500

/** The CertStore id of an ACME certificate. */
export function certId(name: string): string {
  return `acme:${name}`
}

/**
 * Automatic certificates. Keeps one certificate per claimed name (exact, or a `*.` wildcard when
 * DNS-01 is set up): obtains missing ones in the background, renews at two thirds of the lifetime
 * (with jitter), retries failures with exponential backoff while the old certificate keeps serving,
 * and answers TLS handshakes for claimed names without a certificate by ordering one and waiting up
 * to `on_demand_timeout`. Certificates go to `certs/acme/` (AcmeStore) and into the CertStore, which
 * the TLS port serves from.
 *
 * @example
 * const manager = new AcmeManager({ settings, store: new AcmeStore(certsDir), certs, endpoints, accountDomains, httpsPort, ownNames, signal })
 * listenHttp({ ..., acmeChallenge: manager.http01Answer })   // before start()
 * await manager.start()
 */
export class AcmeManager {
  readonly #o: AcmeManagerOptions
  readonly #log: Logger
  readonly #entries = new Map<string, Entry>()
  readonly http01: Http01Responder
  readonly tlsAlpn01: TlsAlpn01Responder
  readonly #solvers: Partial<Record<ChallengeType, Solver>>
  readonly #issue: IssueFn
  /** The account, registered once per process (concurrent orders share it). */
  #account: Promise<AccountOptions & { url: string }> | undefined
  #active = 0
  readonly #queue: (() => void)[] = []
  #tokens = ON_DEMAND_BURST
  #tokensAt = Date.now()
  #reconcileQueued = false
  #started = false
  /** Waiters for the next change of the shared certificates. */
  #shareWaiters: (() => void)[] = []

  constructor(options: AcmeManagerOptions) {
    this.#o = options
    this.#log = options.logger ?? rootLog.child({ component: 'acme' })
    this.http01 = new Http01Responder()
    this.tlsAlpn01 = new TlsAlpn01Responder(this.#log)
    const { settings } = options
    const share = options.share
    this.#solvers = {
      ...(settings.challenges.includes('http-01') ? { 'http-01': share ? published(this.http01, share, (a, c) => http01Key(a.identifier.value, c.token)) : this.http01 } : {}),
      ...(settings.challenges.includes('tls-alpn-01') ? { 'tls-alpn-01': share ? published(this.tlsAlpn01, share, (a) => tlsAlpn01Key(a.identifier.value)) : this.tlsAlpn01 } : {}),
      ...(settings.challenges.includes('dns-01') && settings.dnsHook ? { 'dns-01': new Dns01Hook(settings.dnsHook, { cwd: settings.baseDir }) } : {}),
    }
    this.#issue = options.issue ?? ((name) => this.#issueWithAcme(name))
  }

  /**
   * The plaintext listener's HTTP-01 hook (bound; safe to pass around). With a share, a token this edge
   * did not publish is looked up there: another edge's order may send its validation here.
   */
  readonly http01Answer = (host: string, token: string): string | undefined | Promise<string | undefined> => {
    const local = this.http01.respond(host, token)
    if (local !== undefined || !this.#o.share) return local
    return this.#o.share.challenge(http01Key(host, token)).catch(() => undefined)
  }

  /** TlsFront's `acmeTlsAlpn` hook (bound); with a share, answers another edge's validations too. */
  readonly tlsAlpnHandler: TlsAlpn01Responder['handle'] = (socket, hello, serverName) => {
    const share = this.#o.share
    if (!share || this.tlsAlpn01.has(serverName)) return this.tlsAlpn01.handle(socket, hello, serverName)
    void (async () => {
      const keyAuthorization = await share.challenge(tlsAlpn01Key(serverName)).catch(() => undefined)
      if (keyAuthorization !== undefined && !this.#o.signal.aborted) {
        const authz = { identifier: { type: 'dns', value: serverName.toLowerCase() } } as Parameters<Solver['present']>[0]
        await this.tlsAlpn01.present(authz, { type: 'tls-alpn-01', token: '' }, keyAuthorization)
        setTimeout(() => void this.tlsAlpn01.cleanup(authz), REMOTE_CHALLENGE_MS).unref?.()
      }
      this.tlsAlpn01.handle(socket, hello, serverName)
    })().catch(() => socket.end())
  }

  /**
   * TlsFront's `acmeTlsAlpnContext` hook (bound): the challenge certificate when this edge presents it.
   * Undefined with a share, where it may have to be fetched first (the TLS port then relays every hello).
   */
  get tlsAlpnContext(): ((serverName: string) => ReturnType<typeof createSecureContext>['context'] | undefined) | undefined {
    if (this.#o.share) return undefined
    return (serverName) => this.tlsAlpn01.context(serverName)?.context
  }

  /** The CertStore's on-demand hook (bound). */
  readonly onDemand = (name: string): Promise<CertPair | undefined> => this.ensure(name)

  /**
   * Loads `certs/acme/` and serves what is there (call before the TLS port subscribes to the store,
   * so a restart does not rebuild it once per certificate), then follows the endpoint table.
   */
  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    if (!this.#o.issue) configureAcmeHttp(this.#o.settings.trustedRoots ? { trustedRoots: this.#o.settings.trustedRoots } : {})
    for (const stored of await this.#o.store.load()) {
      const name = stored.meta.name
      if (stored.problem) this.#log.warn(`Cannot load the stored certificate for "${name}": ${stored.problem}; it will be ordered again`, { code: ACME_CODES.STORE_FAILED })
      const entry = this.#entry(name, stored.meta)
      entry.pair = stored.pair
      if (stored.meta.lastError) {
        entry.failures = stored.meta.lastError.failures
        entry.retryAt = Date.parse(stored.meta.lastError.nextAttemptAt) || 0
      }
      if (stored.pair) this.#o.certs.add(certId(name), stored.pair)
    }
    const loaded = [...this.#entries.values()].filter((e) => e.pair)
    if (loaded.length) this.#log.info('loaded stored certificates', { count: loaded.length, names: loaded.map((e) => e.name) })
    if (this.#o.share) {
      this.#o.share.onChange(() => void this.#syncShared())
      // What the other edges ordered already is served, not ordered again.
      await this.#syncShared()
    }
    const offTable = this.#o.endpoints.onChange(() => this.#queueReconcile())
    const offCerts = this.#o.certs.onChange(() => this.#queueReconcile())
    this.#o.signal.addEventListener(
      'abort',
      () => {
        offTable()
        offCerts()
        for (const e of this.#entries.values()) clearTimeout(e.timer)
        this.tlsAlpn01.stop()
      },
      { once: true },
    )
    this.#log.info('automatic certificates on', { directory: this.#o.settings.directory, challenges: Object.keys(this.#solvers) })
    this.reconcile()
  }

  #sources(): ClaimSources {
    return { table: this.#o.endpoints.current, httpsPort: this.#o.httpsPort, accountDomains: this.#o.accountDomains(), own: this.#o.ownNames }
  }

  #queueReconcile(): void {
    if (this.#reconcileQueued || this.#o.signal.aborted) return
    this.#reconcileQueued = true
    queueMicrotask(() => {
      this.#reconcileQueued = false
      this.reconcile()
    })
  }

  /**
   * Brings the schedule in line with what is claimed now: new names are ordered, names still claimed
   * keep renewing, names nothing claims any more are left alone (their certificate serves until it
   * expires, without renewal).
   */
  reconcile(): void {
    if (this.#o.signal.aborted) return
    const sources = this.#sources()
    const wanted = new Set(wantedNames(sources, { wildcards: !!this.#solvers['dns-01'] }))
    for (const name of wanted) this.#entry(name)
    for (const entry of this.#entries.values()) {
      const claimed = wanted.has(entry.name) || (!entry.name.startsWith('*.') && isClaimed(sources, entry.name))
      entry.wanted = claimed
      if (claimed) this.#schedule(entry)
      else {
        clearTimeout(entry.timer)
        entry.timer = undefined
      }
    }
  }

  #entry(name: string, meta?: CertMeta): Entry {
    let entry = this.#entries.get(name)
    if (!entry) {
      entry = { name, meta: meta ?? { name, directory: this.#o.settings.directory }, pair: undefined, wanted: false, timer: undefined, running: undefined, failures: 0, retryAt: 0 }
      this.#entries.set(name, entry)
    }
    return entry
  }

  /** A valid certificate the user put in certs/ covers the name: ACME stays out of the way. */
  #userCovered(name: string, now: number): boolean {
    const pair = this.#o.certs.select(name)
    return pair?.source === 'file' && pair.notAfter.getTime() > now
  }

  /** When the entry needs an order: now when missing, expired or from another CA; else its renewal time. */
  #dueAt(entry: Entry, now: number): number {
    if (entry.retryAt > now) return entry.retryAt
    const pair = entry.pair
    if (!pair || pair.notAfter.getTime() <= now || entry.meta.directory !== this.#o.settings.directory) return now
    const at = entry.meta.renewAt ? Date.parse(entry.meta.renewAt) : NaN
    return Number.isNaN(at) ? now : at
  }

  #schedule(entry: Entry): void {
    clearTimeout(entry.timer)
    entry.timer = undefined
    if (entry.running || !entry.wanted || this.#o.signal.aborted) return
    const now = Date.now()
    if (this.#userCovered(entry.name, now)) return
    const due = this.#dueAt(entry, now)
    if (due <= now) {
      void this.#run(entry)
      return
    }
    entry.timer = setTimeout(() => this.#schedule(entry), Math.min(due - now, MAX_TIMER_MS))
    entry.timer.unref?.()
  }

  /** Starts an order for the entry (at most `maxConcurrent` at once); resolves with the new pair or undefined. */
  #run(entry: Entry): Promise<CertPair | undefined> {
    if (entry.running) return entry.running
    clearTimeout(entry.timer)
    entry.timer = undefined
    const run = (async () => {
      await this.#slot()
      try {
        return await this.#obtain(entry)
      } finally {
        this.#release()
      }
    })()
    entry.running = run
    void run.finally(() => {
      entry.running = undefined
      this.#schedule(entry)
    })
    return run
  }

  async #slot(): Promise<void> {
    if (this.#active < (this.#o.maxConcurrent ?? 4)) {
      this.#active++
      return
    }
    await new Promise<void>((resolve) => this.#queue.push(resolve))
  }

  #release(): void {
    const next = this.#queue.shift()
    if (next) next()
    else this.#active--
  }

  async #obtain(entry: Entry): Promise<CertPair | undefined> {
    const { name } = entry
    const started = Date.now()
    const renewal = !!entry.pair
    const directory = this.#o.settings.directory
    const scope: ProblemScope = {}
    let lock: OrderLock | undefined
    if (this.#o.share) {
      try {
        const turn = await this.#takeTurn(entry)
        if (!turn || !('release' in turn)) return turn
        lock = turn
      } catch (err) {
        return this.#failed(entry, err, scope, started)
      }
    }
    this.#log.info(renewal ? 'renewing certificate' : 'ordering certificate', { name, directory, ...(entry.failures ? { attempt: entry.failures + 1 } : {}) })
    let pair: CertPair
    let issued: { cert: string; key: string }
    try {
      issued = await withProblemScope(scope, () => this.#issue(name))
      pair = parseCertPair(issued.cert, issued.key, 'acme')
    } catch (err) {
      await lock?.release().catch(() => {})
      return this.#failed(entry, err, scope, started)
    }
    const notBefore = new X509Certificate(pair.cert).validFromDate
    const meta: CertMeta = {
      name,
      directory,
      issuer: pair.issuer,
      notBefore: notBefore.toISOString(),
      notAfter: pair.notAfter.toISOString(),
      obtainedAt: new Date().toISOString(),
      renewAt: renewAt(notBefore, pair.notAfter, (this.#o.random ?? Math.random)()).toISOString(),
      lastAttemptAt: new Date(started).toISOString(),
    }
    entry.meta = meta
    entry.pair = pair
    entry.failures = 0
    entry.retryAt = 0
    // Serve first; then store, so the log line below means "serving and on disk".
    this.#o.certs.add(certId(name), pair)
    const ms = Date.now() - started
    if (this.#o.share) {
      // Shared before the lock goes: an edge that takes the lock next finds the certificate and orders nothing.
      try {
        await this.#o.share.save({ cert: issued.cert, key: issued.key, meta })
      } catch (err) {
        this.#log.error(`Cannot share the certificate for "${name}" with the other nodes: ${(err as Error).message}; they order their own once the lock runs out`, { code: CODES.CLUSTER_ACME_UNREACHABLE })
      }
      await lock?.release().catch(() => {})
    }
    try {
      await this.#o.store.saveCertificate(pair, meta)
    } catch (err) {
      this.#log.error(`Cannot store the certificate for "${name}" in certs/acme: ${(err as Error).message}; it serves from memory until restart`, { code: ACME_CODES.STORE_FAILED })
    }
    this.#log.info(renewal ? 'certificate renewed' : 'certificate obtained', { name, issuer: pair.issuer, not_after: meta.notAfter, renew_at: meta.renewAt, ms })
    return pair
  }

  async #failed(entry: Entry, err: unknown, scope: ProblemScope, started: number): Promise<undefined> {
    const { name } = entry
    entry.failures++
    const { retryMinMs, retryMaxMs } = this.#o.settings
    const delay = Math.max(retryDelay(entry.failures, { minMs: retryMinMs, maxMs: retryMaxMs }, (this.#o.random ?? Math.random)()), scope.retryAfterMs ?? 0)
    entry.retryAt = Date.now() + delay
    const message = describeError(err)
    const problem = scope.problem
    entry.meta = {
      ...entry.meta,
      lastAttemptAt: new Date(started).toISOString(),
      lastError: {
        at: new Date().toISOString(),
        message,
        ...(problem ? { problem } : {}),
        failures: entry.failures,
        nextAttemptAt: new Date(entry.retryAt).toISOString(),
      },
    }
    try {
      await this.#o.store.saveMeta(entry.meta)
    } catch (e) {
      this.#log.warn(`Cannot write the metadata for "${name}": ${(e as Error).message}`, { code: ACME_CODES.STORE_FAILED })
    }
    const serving = entry.pair && entry.pair.notAfter.getTime() > Date.now() ? `the previous certificate (valid until ${entry.pair.notAfter.toISOString()})` : 'nothing'
    this.#log.error(`Cannot obtain a certificate for "${name}": ${message}`, {
      code: err instanceof WarrenError ? err.code : problem?.type.endsWith(':rateLimited') ? ACME_CODES.RATE_LIMITED : ACME_CODES.ORDER_FAILED,
      name,
      directory: this.#o.settings.directory,
      attempt: entry.failures,
      retry_in_s: Math.round(delay / 100) / 10,
      serving,
      ...(problem ? { problem, problem_text: formatProblem(problem) } : {}),
    })
    return undefined
  }

  /**
   * On-demand issuance for a TLS handshake (the CertStore hook). A name no endpoint or account
   * claims, or one that does not qualify for a public certificate, gets nothing at once. A claimed
   * name starts (or joins) an order and waits up to `on_demand_timeout`; past that the handshake is
   * refused and the order finishes in the background for the next one. A name in backoff after a
   * failure waits for its retry instead of hammering the CA.
   */
  async ensure(rawName: string): Promise<CertPair | undefined> {
    const name = normalizeName(rawName)
    const now = Date.now()
    const known = this.#entries.get(name)
    if (known?.pair && known.pair.notAfter.getTime() > now) return known.pair
    if (!this.#started || this.#o.signal.aborted || !qualifiesForPublicCert(name)) return undefined
    // A wildcard order in flight covers this name: wait for it rather than ordering the name alone.
    const wild = this.#entries.get(wildcardFor(name) ?? '')
    if (wild?.running) {
      await this.#bounded(wild.running)
      const pair = this.#o.certs.select(name)
      if (pair && pair.notAfter.getTime() > Date.now()) return pair
    }
    const sources = this.#sources()
    if (!isClaimed(sources, name)) {
      this.#log.debug('no endpoint claims this name; no certificate ordered', { name })
      return undefined
    }
    let entry = known
    if (!entry) {
      if (!this.#takeToken(now)) {
        this.#log.warn('too many on-demand certificate orders for new names; handshake refused', { name, code: ACME_CODES.ON_DEMAND_LIMITED })
        return undefined
      }
      entry = this.#entry(name)
    }
    entry.wanted = true
    if (!entry.running) {
      if (entry.retryAt > now) {
        this.#log.debug('certificate order backing off after a failure; handshake refused', { name, retry_at: new Date(entry.retryAt).toISOString() })
        return undefined
      }
      void this.#run(entry)
    }
    return this.#bounded(entry.running!)
  }

  #bounded(p: Promise<CertPair | undefined>): Promise<CertPair | undefined> {
    const ms = this.#o.settings.onDemandTimeoutMs
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms)
      timer.unref?.()
    })
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
  }

  #takeToken(now: number): boolean {
    const refill = Math.floor((now - this.#tokensAt) / ON_DEMAND_REFILL_MS)
    if (refill > 0) {
      this.#tokens = Math.min(ON_DEMAND_BURST, this.#tokens + refill)
      this.#tokensAt += refill * ON_DEMAND_REFILL_MS
    }
    if (this.#tokens <= 0) return false
    this.#tokens--
    return true
  }

  /**
   * With a share, before an order: a current certificate another edge stored is adopted; otherwise this
   * edge takes the name's order lock and orders, or waits while another edge holds it and adopts what
   * that order stored. An order that ends elsewhere without a certificate counts as a failure here
   * (this edge retries after its backoff, taking the lock then). Redis away: the order waits (backoff).
   */
  async #takeTurn(entry: Entry): Promise<CertPair | undefined | OrderLock> {
    const share = this.#o.share!
    const unreachable = (err: unknown) =>
      new WarrenError(CODES.CLUSTER_ACME_UNREACHABLE, `the shared order lock cannot be asked for (Redis, or the workers' supervisor, does not answer): ${err instanceof Error ? err.message : String(err)}`)
    let waiting = false
    for (;;) {
      if (this.#o.signal.aborted) return undefined
      let stored: SharedCertificate | undefined
      try {
        stored = await share.certificate(entry.name)
        const adopted = stored && (await this.#tryAdopt(entry, stored))
        if (adopted) return adopted
        if (!waiting) {
          const lock = await share.lock(entry.name)
          if (lock) {
            // Another edge may have stored it and let go of the lock between the read above and now.
            const again = await share.certificate(entry.name).catch(async (err) => {
              await lock.release().catch(() => {})
              throw err
            })
            const adoptedNow = again && (await this.#tryAdopt(entry, again))
            if (!adoptedNow) return lock
            await lock.release().catch(() => {})
            return adoptedNow
          }
          waiting = true
          this.#log.info('another node is ordering this certificate; waiting for it', { name: entry.name })
        } else if (!(await share.locked(entry.name))) {
          throw new WarrenError(CODES.CLUSTER_ACME_PEER_FAILED, 'the order on another node ended without a certificate')
        }
      } catch (err) {
        throw err instanceof WarrenError ? err : unreachable(err)
      }
      await this.#shareChanged(SHARE_POLL_MS)
    }
  }

  /** A shared certificate this edge can serve without ordering: from the CA in use, valid, not due for renewal. */
  #current(stored: SharedCertificate): boolean {
    const now = Date.now()
    const renew = Date.parse(stored.meta.renewAt ?? '')
    return stored.meta.directory === this.#o.settings.directory && Date.parse(stored.meta.notAfter ?? '') > now && !(renew <= now)
  }

  /**
   * Serves a certificate another edge ordered when it is current, and caches it in certs/acme/.
   * Undefined when it is not current or does not load (then this edge orders one, which replaces it).
   */
  async #tryAdopt(entry: Entry, stored: SharedCertificate): Promise<CertPair | undefined> {
    if (!this.#current(stored)) return undefined
    let pair: CertPair
    try {
      pair = parseCertPair(stored.cert, stored.key, 'acme')
    } catch (err) {
      this.#log.warn(`The certificate another node shared for "${entry.name}" does not load: ${(err as Error).message}`, { code: ACME_CODES.STORE_FAILED })
      return undefined
    }
    entry.meta = stored.meta
    entry.pair = pair
    entry.failures = 0
    entry.retryAt = 0
    this.#o.certs.add(certId(entry.name), pair)
    this.#log.info('certificate from another node', { name: entry.name, issuer: pair.issuer, not_after: stored.meta.notAfter, renew_at: stored.meta.renewAt })
    await this.#o.store.saveCertificate(pair, stored.meta).catch((err) =>
      this.#log.warn(`Cannot cache the certificate for "${entry.name}" in certs/acme: ${(err as Error).message}`, { code: ACME_CODES.STORE_FAILED }),
    )
    return pair
  }

  /** Adopts every shared certificate newer than what this edge serves (one ordered elsewhere, or renewed). */
  async #syncShared(): Promise<void> {
    for (const wake of this.#shareWaiters.splice(0)) wake()
    let all: SharedCertificate[]
    try {
      all = await this.#o.share!.certificates()
    } catch {
      // Redis away: what this edge serves stays; the next announcement or order reads again.
      return
    }
    for (const stored of all) {
      if (!this.#current(stored)) continue
      const entry = this.#entry(stored.meta.name, stored.meta)
      // An edge waiting for this name adopts it itself when it wakes.
      if (entry.running) continue
      if (entry.pair && entry.pair.notAfter.getTime() >= Date.parse(stored.meta.notAfter!)) continue
      if (await this.#tryAdopt(entry, stored)) this.#schedule(entry)
    }
  }

  /** Resolves at the next change of the shared certificates, or after `ms`. */
  #shareChanged(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.#shareWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** The metadata of every name the manager knows, for status pages (`warren certs list` reads the files). */
  snapshot(): { meta: CertMeta; pair: CertPair | undefined; wanted: boolean; running: boolean }[] {
    return [...this.#entries.values()].map((e) => ({ meta: e.meta, pair: e.pair, wanted: e.wanted, running: !!e.running })).sort((a, b) => a.meta.name.localeCompare(b.meta.name))
  }

  /** The account key (created and stored on first use) registered with the CA; retried after a failure. */
  #registered(): Promise<AccountOptions & { url: string }> {
    const { settings, store } = this.#o
    this.#account ??= (async () => {
      const stored = await store.account(settings.directory, createKey)
      // Every edge of a share registers the same key, so they are one account at the CA (this edge's own key, if it is the first).
      const accountKey = this.#o.share ? await this.#o.share.accountKey(accountId(settings.directory), async () => stored.key) : stored.key
      const account: AccountOptions = {
        directory: settings.directory,
        accountKey,
        ...(settings.email ? { email: settings.email } : {}),
        ...(settings.eab ? { eab: settings.eab } : {}),
      }
      const url = await registerAccount(account)
      if (url !== stored.url && accountKey === stored.key) {
        await store.saveAccount(settings.directory, { url, ...(settings.email ? { email: settings.email } : {}) }).catch(() => {})
        this.#log.info('ACME account ready', { directory: settings.directory, account: url })
      }
      return { ...account, url }
    })()
    this.#account.catch(() => (this.#account = undefined))
    return this.#account
  }

  async #issueWithAcme(name: string): Promise<{ cert: string; key: string }> {
    for (let attempt = 1; ; attempt++) {
      const account = await this.#registered()
      try {
        return await issueCertificate(name, {
          ...account,
          accountUrl: account.url,
          challenges: this.#o.settings.challenges,
          solvers: this.#solvers,
          pollMs: this.#o.settings.pollMs,
        })
      } catch (err) {
        // The CA forgot the account (a reset test CA): register again, once. Not on `unauthorized`: CAs
        // also use it for failed validations.
        const scope = currentScope()
        if (!scope?.problem?.type.endsWith(':accountDoesNotExist')) throw err
        this.#account = undefined
        if (attempt >= 2) throw err
        this.#log.info('the CA does not know the ACME account any more; registering again', { directory: this.#o.settings.directory })
        delete scope!.problem
      }
    }
  }
}

/** A solver whose answers are also published in the share, for the other edges to answer validations that reach them. */
function published(solver: Solver, share: AcmeShare, key: (authz: Parameters<Solver['present']>[0], challenge: { token: string }) => string): Solver {
  return {
    async present(authz, challenge, keyAuthorization) {
      await solver.present(authz, challenge, keyAuthorization)
      await share.putChallenge(key(authz, challenge), keyAuthorization)
    },
    async cleanup(authz, challenge, keyAuthorization) {
      await solver.cleanup(authz, challenge, keyAuthorization)
      await share.deleteChallenge(key(authz, challenge)).catch(() => {})
    },
  }
}

/** An error as one clear sentence: acme-client's problem detail, or the network failure. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as { code?: string }).code ?? ((err.cause as { code?: string } | undefined)?.code)
  const text = err.message || code || 'unknown error'
  return code && !text.includes(code) ? `${text} (${code})` : text
}
