import { X509Certificate, createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { mkdir, readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { CODES, WarrenError } from '../lib/errors.ts'
import { log, type Logger } from '../lib/log.ts'
import { devCaPaths, issueLeaf, issuedBy, loadOrCreateDevCa, type DevCa } from './dev-ca.ts'
import { isCertFileName, loadCertFiles, type LoadedCert } from './files.ts'
import { buildIndex, isValidName, normalizeName, selectFrom, type CertIndex } from './match.ts'
import { parseCertPair, type CertPair } from './pair.ts'
import { writeFileAtomic } from './write.ts'

export interface CertStoreOptions {
  /**
   * `dev` issues leaves from the local CA on demand; `files` only serves what exists; `acme` serves
   * what exists plus what `add()` brings, and asks the `setOnDemand()` hook for missing names.
   */
  mode: 'dev' | 'files' | 'acme'
  /** The edge's base domain; the agent port's certificate defaults to `agent.<domain>`. */
  domain: string
  /** Stops watching certs/. */
  signal: AbortSignal
  /** Defaults to the process logger tagged `component: certs`. */
  logger?: Logger
  /** Quiet time after the last change in certs/ before it is read again. */
  debounceMs?: number
}

const DAY_MS = 24 * 60 * 60 * 1000
/** A dev leaf with less than this left is replaced on the next `ensure()`. */
const RENEW_BEFORE_MS = 30 * DAY_MS
/** Names the agent port's dev certificate always carries, so `localhost` SDK setups just work. */
const AGENT_DEFAULT_NAMES = ['localhost', '127.0.0.1', '::1']
/** In certs/dev/: `_` never comes out of `devFileName`, so this cannot collide with a leaf. */
const AGENT_FILE = '_agent.pem'

/**
 * The certificates the TLS listeners serve: the user's files in certs/ (reloaded when they change),
 * leaves of the development CA (issued on demand, cached in certs/dev/), and the agent port's
 * certificate. `select()` is synchronous so an SNI callback can use it directly.
 *
 * @example
 * const store = new CertStore(config.certsDir, { mode: 'dev', domain: config.domain, signal })
 * await store.init()
 * const pair = store.select(serverName) ?? (await store.ensure(serverName))
 */
export class CertStore {
  readonly #dir: string
  readonly #options: CertStoreOptions
  readonly #log: Logger
  #initialized = false
  #ca: DevCa | undefined
  #files: LoadedCert[] = []
  #filesKey = ''
  /** Issued name → leaf. */
  readonly #dev = new Map<string, CertPair>()
  /** ACME certificates by the id their owner gave them. */
  readonly #added = new Map<string, CertPair>()
  #onDemand: ((name: string) => Promise<CertPair | undefined>) | undefined
  #agent: CertPair | undefined
  #index: CertIndex = new Map()
  readonly #issuing = new Map<string, Promise<CertPair>>()
  readonly #listeners = new Set<() => void>()
  #watcher: FSWatcher | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  #reloading: Promise<void> | undefined
  #reloadAgain = false

  constructor(dir: string, options: CertStoreOptions) {
    this.#dir = dir
    this.#options = options
    this.#log = options.logger ?? log.child({ component: 'certs' })
  }

  /** Reads certs/, creates or loads the dev CA and its cached leaves (dev mode), starts watching. */
  async init(): Promise<void> {
    if (this.#initialized) return
    this.#initialized = true
    await mkdir(this.#dir, { recursive: true, mode: 0o700 })
    if (this.#options.mode === 'dev') {
      const { ca, created } = await loadOrCreateDevCa(this.#dir)
      this.#ca = ca
      if (created) this.#log.info('created the development CA; trust it with curl --cacert or root_cas', { path: ca.certPath })
      await this.#loadDevCache(ca)
    }
    await this.#reloadFiles(false)
    this.#watch()
  }

  /**
   * The certificate for a TLS server name, without issuing anything. Exact SAN before the one-label
   * wildcard (`*.example.com` covers `a.example.com`, not `a.b.example.com` nor `example.com`);
   * file certificates before ACME before dev ones; unexpired before expired.
   */
  select(serverName: string): CertPair | undefined {
    return selectFrom(this.#index, normalizeName(serverName))
  }

  /**
   * `select()`, and in dev mode a new leaf from the local CA when nothing usable matches (none,
   * expired, or a dev leaf within 30 days of expiry). Concurrent calls for one name issue once.
   * Callers should only ask for names they serve: every new name costs a key and a file.
   */
  async ensure(name: string): Promise<CertPair | undefined> {
    return this.ready(name) ?? this.#obtain(name)
  }

  /** What `ensure()` answers at once, without issuing or ordering anything; undefined when it would have to. */
  ready(name: string): CertPair | undefined {
    const hit = this.select(name)
    if (!hit) return undefined
    if (this.#options.mode === 'acme') return hit.notAfter.getTime() > Date.now() ? hit : undefined
    return this.#options.mode === 'dev' && isStale(hit) ? undefined : hit
  }

  /**
   * In dev mode, issues `name`'s leaf now unless one is ready, so that the first handshake for it finds
   * it (the TLS port terminates on its accepted socket only while every name it serves has one); nothing
   * in other modes (ACME orders follow the endpoint table by themselves).
   */
  warm(name: string): void {
    // A failure shows again, logged, when a handshake for the name calls ensure().
    if (this.#options.mode === 'dev' && !this.ready(name)) this.ensure(name).catch(() => undefined)
  }

  async #obtain(name: string): Promise<CertPair | undefined> {
    const wanted = normalizeName(name)
    const hit = this.select(wanted)
    if (this.#options.mode === 'acme') {
      if (hit && hit.notAfter.getTime() > Date.now()) return hit
      return (await this.#onDemand?.(wanted)) ?? hit
    }
    if (this.#options.mode !== 'dev' || (hit && !isStale(hit))) return hit
    if (!isValidName(wanted)) {
      this.#log.debug('not issuing a development certificate for an invalid name', { name })
      return hit
    }
    const ca = this.#requireCa('ensure')
    let issuing = this.#issuing.get(wanted)
    if (!issuing) {
      issuing = this.#issueDev(ca, wanted).finally(() => this.#issuing.delete(wanted))
      this.#issuing.set(wanted, issuing)
    }
    return issuing
  }

  /** Every certificate `select()` chooses from. */
  all(): CertPair[] {
    return [...this.#files.map((f) => f.pair), ...this.#added.values(), ...this.#dev.values()]
  }

  /**
   * Serves `pair` (issued by ACME) under `id`, replacing what was added under that id before (a
   * renewal), and tells the listeners. User files still win for the names they cover.
   *
   * @example
   * store.add('acme:api.example.com', parseCertPair(chain, key, 'acme'))
   */
  add(id: string, pair: CertPair): void {
    if (this.#added.get(id) === pair) return
    this.#added.set(id, pair)
    this.#reindex()
    this.#emit()
  }

  /**
   * acme mode: `ensure()` calls `issue` for a name nothing unexpired covers, and serves what it
   * returns (undefined: refuse the handshake). The hook decides whether the name may be issued and
   * how long the handshake waits.
   */
  setOnDemand(issue: ((name: string) => Promise<CertPair | undefined>) | undefined): void {
    this.#onDemand = issue
  }

  /** Called after file certificates changed on disk or a dev leaf was issued; returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }

  /** The dev CA certificate users trust (`curl --cacert`, SDK `root_cas`); exists after `init()` in dev mode. */
  caPath(): string {
    return devCaPaths(this.#dir).certPath
  }

  /**
   * The agent port's certificate. Dev mode: a leaf from the local CA for localhost, 127.0.0.1, ::1
   * and `names` (cached in certs/dev/_agent.pem while the names stay the same). Other modes: the
   * certificate that covers the first of `names`, then `agent.<domain>`.
   */
  async agentCert(names: string[]): Promise<CertPair> {
    if (this.#options.mode !== 'dev') {
      for (const n of [...names, `agent.${this.#options.domain}`]) {
        const pair = this.select(n)
        if (pair) return pair
      }
      throw new WarrenError(
        CODES.CONFIG_INVALID,
        `No certificate for the agent port: add one for "agent.${this.#options.domain}" (or a name in agent_tls.names) to "${this.#dir}"`,
      )
    }
    const ca = this.#requireCa('agentCert')
    const wanted = [...new Set([...AGENT_DEFAULT_NAMES, ...names].map(normalizeName))]
    const bad = wanted.find((n) => !isValidName(n))
    if (bad !== undefined) throw new WarrenError(CODES.CONFIG_INVALID, `Cannot issue the agent certificate: "${bad}" is not a valid DNS name or IP address`)
    const fits = (pair: CertPair | undefined): pair is CertPair => !!pair && sameNames(pair.names, wanted) && !isStale(pair)
    if (fits(this.#agent)) return this.#agent
    const path = join(this.#dir, 'dev', AGENT_FILE)
    const cached = await this.#readDevFile(ca, path)
    if (fits(cached)) return (this.#agent = cached)
    const pair = await issueLeaf(ca, wanted)
    await this.#writeDevFile(path, pair)
    this.#log.info('issued the agent port certificate', { names: wanted, notAfter: pair.notAfter.toISOString() })
    return (this.#agent = pair)
  }

  #requireCa(method: string): DevCa {
    if (!this.#ca) throw new Error(`CertStore.${method}() needs init() to have finished first`)
    return this.#ca
  }

  async #issueDev(ca: DevCa, name: string): Promise<CertPair> {
    const pair = await issueLeaf(ca, [name])
    this.#dev.set(name, pair)
    this.#reindex()
    this.#log.info('issued a development certificate', { name, notAfter: pair.notAfter.toISOString() })
    await this.#writeDevFile(join(this.#dir, 'dev', devFileName(name)), pair)
    this.#emit()
    return pair
  }

  /** A failed cache write costs a re-issue after restart, nothing more: log it and go on. */
  async #writeDevFile(path: string, pair: CertPair): Promise<void> {
    try {
      await mkdir(join(this.#dir, 'dev'), { recursive: true, mode: 0o700 })
      await writeFileAtomic(path, pair.cert + pair.key, { mode: 0o600 })
    } catch (err) {
      this.#log.warn(`Cannot cache the development certificate "${path}": ${(err as Error).message}`)
    }
  }

  async #readDevFile(ca: DevCa, path: string): Promise<CertPair | undefined> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log.warn(`Cannot read "${path}": ${(err as Error).message}`)
      return undefined
    }
    try {
      const pair = parseCertPair(text, text, 'dev')
      // Leaves of an earlier CA (certs/dev-ca.* deleted and recreated) would fail verification.
      if (!issuedBy(ca, new X509Certificate(pair.cert))) return undefined
      return pair
    } catch (err) {
      this.#log.warn(`Cannot load the cached development certificate "${path}": ${(err as Error).message}`)
      return undefined
    }
  }

  async #loadDevCache(ca: DevCa): Promise<void> {
    const dir = join(this.#dir, 'dev')
    let files: string[]
    try {
      files = await readdir(dir)
    } catch {
      return
    }
    for (const file of files.sort()) {
      if (!file.endsWith('.pem') || file.startsWith('.') || file.startsWith('_')) continue
      const pair = await this.#readDevFile(ca, join(dir, file))
      if (pair && pair.notAfter.getTime() > Date.now()) this.#dev.set(pair.names[0]!, pair)
    }
    this.#reindex()
  }

  #watch(): void {
    const { signal } = this.#options
    if (signal.aborted) return
    try {
      this.#watcher = watch(this.#dir, { persistent: false }, (_event, file) => {
        // Events for the dev CA, hidden temp files and other files change nothing we serve.
        if (typeof file === 'string' && !isCertFileName(file)) return
        clearTimeout(this.#timer)
        this.#timer = setTimeout(() => void this.#reloadFiles(true), this.#options.debounceMs ?? 100)
      })
    } catch (err) {
      this.#log.warn(`Cannot watch "${this.#dir}"; certificate changes need a restart: ${(err as Error).message}`)
      return
    }
    this.#watcher.on('error', (err) => this.#log.warn(`Stopped watching "${this.#dir}": ${err.message}`))
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(this.#timer)
        this.#watcher?.close()
        this.#watcher = undefined
      },
      { once: true },
    )
  }

  /** Serialized: a change during a read leads to one more read afterwards. */
  #reloadFiles(notify: boolean): Promise<void> {
    if (this.#reloading) {
      this.#reloadAgain = true
      return this.#reloading
    }
    this.#reloading = (async () => {
      do {
        this.#reloadAgain = false
        await this.#readFiles(notify)
      } while (this.#reloadAgain && !this.#options.signal.aborted)
    })().finally(() => {
      this.#reloading = undefined
    })
    return this.#reloading
  }

  async #readFiles(notify: boolean): Promise<void> {
    let result: Awaited<ReturnType<typeof loadCertFiles>>
    try {
      result = await loadCertFiles(this.#dir)
    } catch (err) {
      this.#log.warn(`Cannot read the certificates directory "${this.#dir}": ${(err as Error).message}`)
      return
    }
    for (const p of result.problems) this.#log.warn(p.message, { file: p.file })
    const hash = createHash('sha256')
    for (const l of result.loaded) hash.update(`${l.file}\0${l.keyFile}\0${l.pair.cert}\0${l.pair.key}\0`)
    const key = hash.digest('hex')
    if (key === this.#filesKey) return
    this.#filesKey = key
    this.#files = result.loaded
    this.#reindex()
    const now = Date.now()
    for (const l of result.loaded) {
      const fields = { file: l.file, names: l.pair.names, notAfter: l.pair.notAfter.toISOString() }
      if (l.pair.notAfter.getTime() <= now) this.#log.warn(`Certificate "${l.file}" has expired`, fields)
      else this.#log.info('loaded certificate', fields)
    }
    if (notify) this.#emit()
  }

  #reindex(): void {
    this.#index = buildIndex(this.all())
  }

  #emit(): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener()
      } catch (err) {
        this.#log.error('a certificate change listener failed', { error: err instanceof Error ? err.message : String(err) })
      }
    }
  }
}

function isStale(pair: CertPair): boolean {
  const left = pair.notAfter.getTime() - Date.now()
  return left <= 0 || (pair.source === 'dev' && left < RENEW_BEFORE_MS)
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',')
}

/**
 * certs/dev/ file name of the leaf for `name`: bytes outside `[a-z0-9.-]` become `%XX`
 * (`*.a.test` → `%2A.a.test.pem`, `::1` → `%3A%3A1.pem`); over-long names are hashed.
 */
export function devFileName(name: string): string {
  const safe = name.replace(/[^a-z0-9.-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
  return safe.length <= 200 ? `${safe}.pem` : `h-${createHash('sha256').update(name).digest('hex').slice(0, 32)}.pem`
}
