import type { Logger } from '../lib/log.ts'
import type { Secret } from '../lib/secret.ts'
import type { MuxStream } from '../tunnel/mux.ts'
import { MuxError } from '../tunnel/proto/frame.ts'
import { TunnelClient, TunnelError } from './client.ts'
import type { ProxyHeader } from '../tunnel/proto/messages.ts'
import { HttpTap, type CaptureStore } from '../inspect/capture.ts'
import { FileServers, forwardStream, type ConnectionDone } from './forward.ts'
import { forwardHttp2, Http2Sessions } from './http2-upstream.ts'
import { TlsTerminators } from './tls-termination.ts'

/** Which side sent a connection's last bytes, and when: tells idle keep-alive connections from busy ones. */
interface Activity {
  lastFrom: 'none' | 'client' | 'upstream'
  lastAt: number
}
import { bindRequest, type EndpointSpec } from './spec.ts'

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential from `minMs`, capped at `maxMs`,
 * with jitter (50–100 % of the step) so agents cut off together do not come back in lockstep.
 *
 * @example backoffDelay(3, { minMs: 100, maxMs: 15000, random: () => 1 }) // 800
 */
export function backoffDelay(attempt: number, options: { minMs?: number; maxMs?: number; random?: () => number } = {}): number {
  const min = options.minMs ?? 100
  const max = options.maxMs ?? 15_000
  const step = Math.min(max, min * 2 ** Math.min(attempt, 30))
  return Math.round(step * (0.5 + (options.random ?? Math.random)() * 0.5))
}

/** Waits for `promise`, but at most `ms` (without keeping the process alive afterwards). */
async function within(ms: number, promise: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([promise, new Promise<void>((r) => (timer = setTimeout(r, ms)))])
  clearTimeout(timer)
}

export interface AgentOptions {
  serverAddr: string
  /** PEM text of the CA for the edge (undefined: default trust). */
  ca: string | undefined
  authtoken: Secret
  metadata?: string | undefined
  heartbeatIntervalMs?: number | undefined
  heartbeatToleranceMs?: number | undefined
  endpoints: readonly EndpointSpec[]
  log: Logger
  backoff?: { minMs?: number; maxMs?: number }
  /** Keep retrying when the edge cannot be reached at start (the CLI does; the SDK fails at once). Default true. */
  retryStart?: boolean
  /** How long `stop()` lets open connections finish after unbinding (ms). */
  drainMs?: number
  /** Where HTTP exchanges are captured for the inspector (none: no capture). */
  capture?: CaptureStore | undefined
  /** A proxied connection ended. */
  onConnection?(done: ConnectionDone): void
  /** An endpoint got its URL (at start) or a different one (after the edge forgot it). */
  onForwarding?(endpoint: EndpointState): void
  /** The edge asked the agent to stop (Stop command), or stopped its last endpoint. */
  onStopRequested?(why: string): void
}

/** An endpoint as bound: its tunnel id (kept across reconnects) and URL. */
export interface EndpointState {
  spec: EndpointSpec
  id: string
  url: string
  online: boolean
}

/**
 * The warren agent: keeps one session with the edge alive, binds every endpoint, forwards proxy
 * streams to their upstreams, and after a drop reconnects with backoff, resuming with the old
 * ClientId and Cookie and re-binding the same tunnel ids so the URLs stay. When the edge restarted
 * and forgot a URL, the agent asks for it again (and accepts a new one if it cannot be had).
 */
export class Agent {
  readonly #o: AgentOptions
  readonly #log: Logger
  readonly #files = new FileServers()
  readonly #http2 = new Http2Sessions()
  readonly #terminators: TlsTerminators
  readonly #states: EndpointState[]
  #client: TunnelClient | undefined
  #resume: { clientId: string; cookie: string } | undefined
  #stopping = false
  #wake: (() => void) | undefined
  #supervisor: Promise<void> | undefined
  readonly #open = new Map<number, { kind: EndpointState['spec']['kind']; activity: Activity }>()
  #nextConn = 0
  /** Connections proxied since start. */
  connections = 0

  constructor(options: AgentOptions) {
    this.#o = options
    this.#log = options.log
    this.#terminators = new TlsTerminators(options.log)
    this.#states = options.endpoints.map((spec) => ({ spec, id: '', url: '', online: false }))
  }

  get endpoints(): readonly EndpointState[] {
    return this.#states
  }

  /** Heartbeat round trip of the current session (ms). */
  get latencyMs(): number | undefined {
    return this.#client?.latencyMs
  }

  /** Open proxied connections. */
  get activeConnections(): number {
    return this.#open.size
  }

  get session(): { clientId: string; account: string; online: boolean } | undefined {
    const c = this.#client
    return c ? { clientId: c.auth.clientId, account: c.auth.accountName, online: !c.isClosed } : undefined
  }

  /**
   * Connects and binds every endpoint. Throws TunnelError when the edge refuses (authtoken, a bind);
   * an unreachable edge is retried with backoff until `signal` aborts.
   */
  async start(signal?: AbortSignal): Promise<readonly EndpointState[]> {
    // Agent-side TLS terminators listen before the first connection can arrive.
    for (const { spec } of this.#states) if (spec.tlsTermination) await this.#terminators.start(spec.tlsTermination, spec.upstream, spec.name)
    let attempt = 0
    for (;;) {
      try {
        await this.#session()
        break
      } catch (err) {
        if ((err instanceof TunnelError && err.fatal) || this.#o.retryStart === false || !(err instanceof TunnelError)) {
          // A goodbye, not a drop: endpoints bound before the refusal are released at once instead
          // of staying reserved for the reconnect grace period.
          if (this.#client && !this.#client.isClosed) this.#client.close('agent could not start')
          else this.#client?.terminate()
          this.#client = undefined
          this.#terminators.dispose()
          throw err
        }
        if (signal?.aborted || this.#stopping) throw err
        const delay = backoffDelay(attempt++, this.#o.backoff)
        this.#log.warn('cannot reach the edge; retrying', { server: this.#o.serverAddr, error: (err as Error).message, retry_in_ms: delay })
        await this.#sleep(delay, signal)
        if (signal?.aborted || this.#stopping) throw err
      }
    }
    this.#supervisor = this.#supervise()
    return this.#states
  }

  /** Unbinds every endpoint, lets open connections finish (up to `drainMs`), then says goodbye. */
  async stop(): Promise<void> {
    if (this.#stopping) return
    this.#stopping = true
    this.#wake?.()
    const client = this.#client
    if (client && !client.isClosed) {
      await within(2000, Promise.allSettled(this.#states.filter((s) => s.online).map((s) => client.unbind(s.id))))
      await this.#drain(this.#o.drainMs ?? 5000)
      client.close()
    }
    for (const s of this.#states) s.online = false
    await this.#supervisor
    // A reconnect that completed while we were stopping: say goodbye on it too.
    if (this.#client && !this.#client.isClosed) this.#client.close()
    this.#files.dispose()
    this.#http2.dispose()
    this.#terminators.dispose()
  }

  /**
   * Waits until no connection is busy, at most `ms`. The edge keeps idle HTTP connections to the agent
   * open for reuse; one whose last bytes were the upstream's answer (a while ago) is idle, not in flight.
   */
  async #drain(ms: number): Promise<void> {
    const deadline = Date.now() + ms
    const busy = () =>
      [...this.#open.values()].some(
        (c) => c.kind !== 'http' || c.activity.lastFrom === 'client' || (c.activity.lastFrom === 'upstream' && Date.now() - c.activity.lastAt < 250),
      )
    while (busy() && Date.now() < deadline) await new Promise<void>((r) => setTimeout(r, 25))
  }

  /** One session: connect + auth, then (re)bind every endpoint. */
  async #session(): Promise<void> {
    const client = await TunnelClient.connect({
      serverAddr: this.#o.serverAddr,
      ca: this.#o.ca,
      authtoken: this.#o.authtoken,
      metadata: this.#o.metadata,
      heartbeatIntervalMs: this.#o.heartbeatIntervalMs,
      heartbeatToleranceMs: this.#o.heartbeatToleranceMs,
      resume: this.#resume,
      log: this.#log,
      onProxy: (stream, header, rest) => this.#proxy(stream, header, rest),
      onCommand: (command) => this.#command(command),
      onStopTunnel: (id, message, code) => this.#stopTunnel(id, message, code),
    })
    this.#client = client
    const resumed = this.#resume !== undefined && client.auth.clientId === this.#resume.clientId
    this.#resume = { clientId: client.auth.clientId, cookie: client.auth.cookie }
    this.#log.info('session established', { server: this.#o.serverAddr, client_id: client.auth.clientId, account: client.auth.accountName, resumed })
    for (const state of this.#states) await this.#bind(client, state)
  }

  async #bind(client: TunnelClient, state: EndpointState): Promise<void> {
    const first = state.id === ''
    let reply: { id: string; url: string }
    try {
      reply = await client.bind(bindRequest(state.spec, state.id, state.url || undefined))
    } catch (err) {
      // The edge restarted and cannot give the old URL back (e.g. a random name): take a new one.
      if (first || state.spec.url || !(err instanceof TunnelError) || !err.fatal) throw err
      this.#log.warn('the edge cannot give the previous URL back; binding a new one', { endpoint: state.spec.name, url: state.url, error: err.message })
      reply = await client.bind(bindRequest(state.spec, state.id))
    }
    const changed = reply.url !== state.url
    state.id = reply.id || state.id
    state.url = reply.url
    state.online = true
    if (first || changed) {
      this.#log.info(`Forwarding ${state.url} -> ${state.spec.upstream.text}`, { endpoint: state.spec.name, url: state.url, upstream: state.spec.upstream.text, tunnel: state.id })
      this.#o.onForwarding?.(state)
    } else this.#log.info('endpoint resumed', { endpoint: state.spec.name, url: state.url })
  }

  /** Waits for the session to end, then reconnects with backoff until `stop()`. */
  async #supervise(): Promise<void> {
    while (!this.#stopping) {
      const reason = await this.#client!.closed
      for (const s of this.#states) s.online = false
      if (this.#stopping) return
      this.#log.warn('session lost; reconnecting', { reason: reason.message, by: reason.by })
      let attempt = 0
      while (!this.#stopping) {
        await this.#sleep(backoffDelay(attempt++, this.#o.backoff))
        if (this.#stopping) return
        try {
          await this.#session()
          break
        } catch (err) {
          this.#client?.terminate()
          const e = err as Error
          const level = err instanceof TunnelError && err.fatal ? 'error' : 'warn'
          this.#log[level]('reconnect failed', { error: e.message, code: (err as TunnelError).code, attempt })
        }
      }
    }
  }

  #sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#wake = done
      signal?.addEventListener('abort', done)
    })
  }

  #proxy(stream: MuxStream, header: ProxyHeader, rest: Uint8Array): void {
    const state = this.#states.find((s) => s.id === header.Id)
    if (!state || this.#stopping) return stream.terminate(MuxError.STREAM_REFUSED)
    const key = this.#nextConn++
    const activity: Activity = { lastFrom: 'none', lastAt: Date.now() }
    this.#open.set(key, { kind: state.spec.kind, activity })
    this.connections++
    const tap = this.#o.capture && state.spec.kind === 'http' ? new HttpTap(this.#o.capture, { name: state.spec.name, url: state.url }, header.ClientAddr) : undefined
    const release = () => {
      if (this.#open.delete(key)) tap?.close()
    }
    const spec = state.spec
    const forward = spec.upstreamProtocol === 'http2' ? forwardHttp2 : forwardStream
    forward(stream, rest, {
      endpoint: state.url,
      kind: spec.kind,
      upstream: spec.tlsTermination ? this.#terminators.upstreamFor(spec.tlsTermination) : spec.upstream,
      files: this.#files,
      sessions: this.#http2,
      log: this.#log,
      clientAddr: header.ClientAddr,
      pooled: spec.poolingEnabled,
      onDone: (done) => {
        this.#log.debug('connection closed', { endpoint: state.spec.name, client: done.clientAddr, bytes_in: done.bytesIn, bytes_out: done.bytesOut, ms: done.endedAt - done.startedAt })
        this.#o.onConnection?.(done)
      },
      onStreamClosed: release,
      observer: {
        client(chunk) {
          activity.lastFrom = 'client'
          activity.lastAt = Date.now()
          tap?.client(chunk)
        },
        upstream(chunk) {
          activity.lastFrom = 'upstream'
          activity.lastAt = Date.now()
          tap?.upstream(chunk)
        },
      },
    })
  }

  #command(command: 'stop' | 'restart'): string | undefined {
    this.#log.warn(`the edge asked the agent to ${command}`)
    if (command === 'stop') setTimeout(() => this.#o.onStopRequested?.('the edge sent a stop command'), 10)
    // Restart: drop the session without a goodbye so the URLs stay reserved, and reconnect at once.
    else setTimeout(() => this.#client?.terminate(), 10)
    return undefined
  }

  #stopTunnel(id: string, message: string, code: string): void {
    const at = this.#states.findIndex((s) => s.id === id)
    if (at === -1) return
    const [state] = this.#states.splice(at, 1)
    this.#log.error('the edge stopped an endpoint', { endpoint: state!.spec.name, url: state!.url, message, code })
    if (this.#states.length === 0) this.#o.onStopRequested?.('the edge stopped every endpoint')
  }
}
