import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { VERSION } from '../cli/version.ts'
import { CODES, type ErrorCode } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import type { ThrottledLog } from '../lib/throttled-log.ts'
import { accountForToken, type Account } from './accounts.ts'
import { MuxSession, type CloseReason, type MuxLimits, type MuxStream, type MuxTransport } from './mux.ts'
import { INITIAL_WINDOW, MuxError } from './proto/frame.ts'
import { encodeProxyHeader, encodeStreamType, errorReply, field, StreamType, stringField } from './proto/messages.ts'

/** Largest RPC request we accept, in bytes. */
const MAX_RPC_BYTES = 1024 * 1024
/** RPC request bytes one session may hold at once, over all its streams. */
const MAX_RPC_HELD_BYTES = 4 * MAX_RPC_BYTES
/**
 * What a connection may send before Auth succeeds, frame headers included. The SDKs' Auth request
 * is under 1 KiB (plus the user's metadata); the heartbeat stream adds a few bytes.
 */
export const PREAUTH_MAX_BYTES = 16 * 1024
/** Until Auth: frames no larger than the whole allowance, and streams for heartbeat, Auth and a spare. */
const PREAUTH_LIMITS: MuxLimits = { maxFrameBody: PREAUTH_MAX_BYTES, maxRemoteStreams: 4 }
/**
 * After Auth: frames up to a stream's window (a larger DATA frame would break flow control), and an
 * agent may have as many streams open toward us as it lets us open toward it (512).
 */
const AGENT_LIMITS: MuxLimits = { maxFrameBody: INITIAL_WINDOW, maxRemoteStreams: 512 }
/** Time from the TCP connection to a successful Auth (TLS handshake included), unless the host says. */
const DEFAULT_AUTH_TIMEOUT_MS = 10_000
/** What the agents send when they do not say (ngrok's defaults). */
const DEFAULT_HEARTBEAT_NS = 10_000_000_000
const DEFAULT_TOLERANCE_NS = 15_000_000_000
/** How long after answering an RPC the edge waits for the agent to close its side (having read the answer) before assuming it did. */
const REPLY_READ_FALLBACK_MS = 1000

export type RpcReply = Record<string, unknown>

/** What a session needs from the rest of the edge. */
export interface SessionHost {
  accounts(): readonly Account[]
  /** Secret for resume cookies (per process). */
  cookieSecret: Buffer
  log: Logger
  /**
   * `replyRead` settles once the agent has read the answer: it closed its side of the RPC stream, as
   * ngrok's agents do after reading (or 1 s passed). An agent drops proxy streams for a tunnel id it
   * has not learnt yet, so a new tunnel must not get any before.
   */
  bind(session: AgentSession, request: unknown, replyRead: Promise<void>): Promise<RpcReply> | RpcReply
  unbind(session: AgentSession, request: unknown): RpcReply
  /**
   * The session ended. After a goodbye (the agent's GOAWAY) its endpoints go at once; after a drop they
   * stay reserved for a grace period so a reconnecting agent gets the same URLs.
   */
  closed(session: AgentSession, goodbye: boolean): void
  /** The agent authenticated (`resumed`: it showed the cookie of an earlier session with the same id). */
  connected?(session: AgentSession, resumed: boolean): void
  /** Milliseconds from the connection's start (TLS handshake included) to a successful Auth; 10 s by default. */
  authTimeoutMs?: number
  /** Logs a connection cut for a limit; a flood repeats these at will, so the host throttles them. */
  limitLog?: ThrottledLog
}

function randomId(prefix: string): string {
  return prefix + randomBytes(12).toString('hex')
}

/**
 * One connected agent: a muxado session plus the typed streams of ngrok's protocol (Auth, Bind,
 * Unbind, SrvInfo, heartbeats) and the proxy streams the edge opens toward it.
 */
export class AgentSession {
  readonly mux: MuxSession
  readonly remoteAddr: string
  readonly connectedAt = Date.now()
  readonly #transport: MuxTransport
  #host: SessionHost
  #log: Logger
  #id = ''
  #account: Account | undefined
  #clientInfo: Record<string, unknown> = {}
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined
  #livenessMs = (DEFAULT_HEARTBEAT_NS + DEFAULT_TOLERANCE_NS) / 1e6
  #heartbeatMs = DEFAULT_HEARTBEAT_NS / 1e6
  #lastHeartbeat = Date.now()
  #preAuthBytes = 0
  #rpcHeldBytes = 0
  #authTimer: ReturnType<typeof setTimeout> | undefined
  /** Measured by heartbeats the edge starts (ms); undefined until the first echo. */
  latencyMs: number | undefined

  constructor(transport: MuxTransport, remoteAddr: string, host: SessionHost) {
    this.remoteAddr = remoteAddr
    this.#transport = transport
    this.#host = host
    this.#log = host.log.child({ agent: remoteAddr })
    this.mux = new MuxSession(
      transport,
      {
        onStream: (stream) => this.#onStream(stream),
        onClose: (reason) => this.#onClose(reason),
      },
      { limits: PREAUTH_LIMITS },
    )
    // A connection that never authenticates (or never finishes its TLS handshake) does not hold memory for long.
    this.#authTimer = setTimeout(() => {
      if (this.#account) return
      if (this.mux.closed) return this.#transport.terminate()
      this.#cut(CODES.AGENT_AUTH_TIMEOUT, 'agent did not authenticate in time; connection cut', { timeout_ms: host.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS })
    }, host.authTimeoutMs ?? DEFAULT_AUTH_TIMEOUT_MS)
    this.#authTimer.unref?.()
  }

  /** Bytes from the transport. Before Auth succeeds, at most PREAUTH_MAX_BYTES in all. */
  feed(chunk: Uint8Array): void {
    if (!this.#account && !this.mux.closed) {
      this.#preAuthBytes += chunk.length
      if (this.#preAuthBytes > PREAUTH_MAX_BYTES)
        return this.#cut(CODES.AGENT_PREAUTH_LIMIT, 'agent sent too much before authenticating; connection cut', { limit_bytes: PREAUTH_MAX_BYTES })
    }
    this.mux.feed(chunk)
  }

  /**
   * Ends a connection that broke a limit: GOAWAY if the transport takes it, then closed at once (an
   * unauthenticated peer is owed no graceful close, and a half-closed socket it keeps open would hold on).
   */
  #cut(code: ErrorCode, message: string, fields: Record<string, unknown>): void {
    this.#host.limitLog?.('warn', message, { code, client_addr: this.remoteAddr, ...fields })
    this.mux.abort(MuxError.ENHANCE_YOUR_CALM, `${message} [${code}]`)
  }

  get id(): string {
    return this.#id
  }

  get account(): Account | undefined {
    return this.#account
  }

  /** What the agent said about itself in Auth (OS, version, client type…), without the authtoken. */
  get clientInfo(): Readonly<Record<string, unknown>> {
    return this.#clientInfo
  }

  /**
   * The agent is gone even if the edge has not closed the session yet: its connection closed, or it
   * missed two heartbeats in a row (silent for twice the interval it declared; a frozen or partitioned
   * agent). Another session of the same account may then take its URLs over.
   */
  get disconnected(): boolean {
    return this.mux.closed || Date.now() - this.#lastHeartbeat > 2 * this.#heartbeatMs
  }

  /** Opens a proxy stream for one public connection; undefined when the session is full or gone. */
  openProxy(header: { Id: string; ClientAddr: string; Proto: string; EdgeType: string; PassthroughTLS: boolean }): MuxStream | undefined {
    const stream = this.mux.open()
    if (!stream) return undefined
    stream.writeHeader(encodeProxyHeader(header))
    return stream
  }

  /** Tells the agent one endpoint was stopped by the edge (StopTunnel; no reply expected). */
  stopTunnel(id: string, message: string, errorCode: string): void {
    const stream = this.mux.open()
    if (!stream) return
    stream.writeHeader(encodeStreamType(StreamType.STOP_TUNNEL))
    stream.writeHeader(new TextEncoder().encode(JSON.stringify({ Id: id, Message: message, ErrorCode: errorCode })))
    stream.end()
  }

  /** Sends a command the agent answers (Stop, Restart, Update); resolves with its reply. */
  command(type: typeof StreamType.STOP | typeof StreamType.RESTART | typeof StreamType.UPDATE, body: object = {}): Promise<unknown> {
    const stream = this.mux.open()
    if (!stream) return Promise.resolve({ Error: 'session unavailable' })
    return new Promise((resolve) => {
      let text = ''
      stream.ondata = (chunk) => (text += new TextDecoder().decode(chunk))
      stream.onclose = () => {
        try {
          resolve(JSON.parse(text || '{}'))
        } catch {
          resolve({ Error: 'invalid reply' })
        }
      }
      stream.write(encodeStreamType(type))
      stream.write(new TextEncoder().encode(JSON.stringify(body)))
      stream.end()
    })
  }

  /** Ends the session: GOAWAY, then the connection closes. */
  close(message = 'edge shutting down', code: number = MuxError.NONE): void {
    this.mux.goAway(code, message)
  }

  #armLiveness(): void {
    clearTimeout(this.#heartbeatTimer)
    this.#heartbeatTimer = setTimeout(() => {
      const silent = Date.now() - this.#lastHeartbeat
      if (silent >= this.#livenessMs) {
        this.#log.warn('agent heartbeat timed out; closing session', { client_id: this.#id, silent_ms: silent })
        this.close('heartbeat timeout', MuxError.WRITE_TIMEOUT)
      } else this.#armLiveness()
    }, this.#livenessMs)
    this.#heartbeatTimer.unref?.()
  }

  #onClose(reason: CloseReason): void {
    clearTimeout(this.#heartbeatTimer)
    // Before Auth the deadline stays armed until the socket is gone: a peer may keep a half-closed one open.
    if (reason.by === 'transport' || this.#account) clearTimeout(this.#authTimer)
    if (!this.#account) {
      if (reason.by === 'local' && reason.code === MuxError.FRAME_SIZE) {
        // The frame reader refused a frame over the pre-auth allowance from its header alone. (This runs
        // inside goAway, before its end(): Bun would ignore a terminate() that comes after.)
        this.#host.limitLog?.('warn', 'agent sent too much before authenticating; connection cut', { code: CODES.AGENT_PREAUTH_LIMIT, client_addr: this.remoteAddr, reason: reason.message })
        this.#transport.terminate()
      }
      return this.#log.debug('unauthenticated agent connection closed', { reason: reason.message, by: reason.by })
    }
    if (reason.by === 'local' && reason.code === MuxError.ENHANCE_YOUR_CALM)
      this.#host.limitLog?.('warn', 'agent stopped reading; session cut', { code: CODES.AGENT_QUEUE_LIMIT, client_addr: this.remoteAddr, client_id: this.#id })
    this.#log.info('agent disconnected', { client_id: this.#id, account: this.#account.name, reason: reason.message, by: reason.by })
    this.#host.closed(this, reason.by === 'peer')
  }

  #onStream(stream: MuxStream): void {
    // Every agent stream starts with a u32 type; collect it, then hand the rest to that stream's handler.
    let head = new Uint8Array(0)
    stream.ondata = (chunk) => {
      const joined = new Uint8Array(head.length + chunk.length)
      joined.set(head)
      joined.set(chunk, head.length)
      if (joined.length < 4) return void (head = joined)
      const type = new DataView(joined.buffer, joined.byteOffset).getUint32(0)
      const rest = joined.subarray(4)
      if (type === StreamType.HEARTBEAT) this.#heartbeatStream(stream, rest)
      else this.#rpcStream(stream, type, rest)
    }
  }

  #heartbeatStream(stream: MuxStream, first: Uint8Array): void {
    // Echo every 4-byte nonce at once; the agent measures latency from our echo.
    let pending = new Uint8Array(0)
    const onData = (chunk: Uint8Array) => {
      const joined = new Uint8Array(pending.length + chunk.length)
      joined.set(pending)
      joined.set(chunk, pending.length)
      const whole = joined.length - (joined.length % 4)
      if (whole > 0) {
        stream.write(joined.slice(0, whole))
        this.#lastHeartbeat = Date.now()
      }
      pending = joined.slice(whole)
    }
    stream.ondata = onData
    stream.onend = () => stream.end()
    if (first.length) onData(first)
  }

  #rpcStream(stream: MuxStream, type: number, first: Uint8Array): void {
    let text = ''
    const decoder = new TextDecoder()
    let done = false
    // Bytes of this request held until it parses; all of a session's together are capped too.
    let held = 0
    const release = () => {
      this.#rpcHeldBytes -= held
      held = 0
    }
    let markRead = () => {}
    const replyRead = new Promise<void>((resolve) => (markRead = resolve))
    stream.onclose = () => {
      release()
      markRead()
    }
    const onData = (chunk: Uint8Array) => {
      if (done) return
      held += chunk.length
      this.#rpcHeldBytes += chunk.length
      if (held > MAX_RPC_BYTES || this.#rpcHeldBytes > MAX_RPC_HELD_BYTES) {
        done = true
        release()
        return stream.terminate(MuxError.FRAME_SIZE)
      }
      text += decoder.decode(chunk, { stream: true })
      // Requests are JSON objects: parse only when the text could be whole (a parse per chunk of a long one is quadratic).
      if (!text.trimEnd().endsWith('}')) return
      let request: unknown
      try {
        request = JSON.parse(text)
      } catch {
        return // incomplete JSON: wait for more (the agent sends no length and no FIN)
      }
      done = true
      release()
      text = ''
      void this.#answer(type, request, replyRead).then((reply) => {
        stream.write(new TextEncoder().encode(JSON.stringify(reply)))
        stream.end()
        setTimeout(markRead, REPLY_READ_FALLBACK_MS).unref?.()
        if (type === StreamType.AUTH && !this.#account) setTimeout(() => this.close('authentication failed'), 50)
      })
    }
    stream.ondata = onData
    if (first.length) onData(first)
  }

  async #answer(type: number, request: unknown, replyRead: Promise<void>): Promise<RpcReply> {
    try {
      if (type === StreamType.AUTH) return this.#auth(request)
      if (!this.#account) return errorReply('Authenticate first.', 'ERR_NGROK_105', 'ERR_WARREN_4001')
      switch (type) {
        case StreamType.BIND:
          return await this.#host.bind(this, request, replyRead)
        case StreamType.UNBIND:
          return this.#host.unbind(this, request)
        case StreamType.SRV_INFO:
          return { Region: 'local' }
        case StreamType.START_TUNNEL_WITH_LABEL:
          return errorReply('Labeled tunnels (edges) are not supported by warren; bind an endpoint URL instead.', 'ERR_NGROK_9010', 'ERR_WARREN_4006')
        default:
          return errorReply(`Unknown request type ${type}.`, 'ERR_NGROK_9010', 'ERR_WARREN_4006')
      }
    } catch (err) {
      this.#log.error('agent request failed', { type, error: err instanceof Error ? err.stack : String(err) })
      return errorReply('The edge failed to handle this request.', 'ERR_NGROK_9999', 'ERR_WARREN_3999')
    }
  }

  #cookieFor(clientId: string, account: string): string {
    return createHmac('sha256', this.#host.cookieSecret).update(`${clientId}\0${account}`).digest('base64url')
  }

  #auth(request: unknown): RpcReply {
    if (this.#account) return errorReply('This session is already authenticated.', 'ERR_NGROK_105', 'ERR_WARREN_4001')
    const extra = field(request, 'Extra')
    const token = stringField(extra, 'AuthToken')
    const account = token ? accountForToken(this.#host.accounts(), token) : undefined
    if (!account) {
      this.#log.warn('agent authentication failed', { code: 'ERR_WARREN_4002', token_given: token !== '' })
      return errorReply(
        // Said so a newcomer can fix it: the SDKs show this text as it is.
        token
          ? 'The authtoken you specified is invalid. Ask the operator of this warren edge for yours (accounts[].authtokens in warren.yaml), then save it with `warren config add-authtoken TOKEN`.'
          : 'An authtoken is required to connect to this warren edge. Save yours with `warren config add-authtoken TOKEN` (or pass --authtoken TOKEN, or set WARREN_AUTHTOKEN).',
        token ? 'ERR_NGROK_107' : 'ERR_NGROK_105',
        'ERR_WARREN_4002',
      )
    }
    // A reconnecting agent keeps its id when it shows the cookie we gave it for that id and account.
    const previous = stringField(request, 'ClientId')
    const cookie = stringField(extra, 'Cookie')
    const expected = previous ? this.#cookieFor(previous, account.name) : ''
    const resumes = previous !== '' && cookie.length === expected.length && timingSafeEqual(Buffer.from(cookie), Buffer.from(expected))
    this.#id = resumes ? previous : randomId('')
    this.#account = account
    clearTimeout(this.#authTimer)
    this.mux.limit(AGENT_LIMITS)
    const interval = Number(field(extra, 'HeartbeatInterval')) || DEFAULT_HEARTBEAT_NS
    const tolerance = Number(field(extra, 'HeartbeatTolerance')) || DEFAULT_TOLERANCE_NS
    this.#livenessMs = Math.max(1000, (interval + tolerance) / 1e6)
    this.#heartbeatMs = Math.max(500, interval / 1e6)
    this.#lastHeartbeat = Date.now()
    this.#armLiveness()
    const info: Record<string, unknown> = {}
    if (extra && typeof extra === 'object')
      for (const [k, v] of Object.entries(extra)) if (k.toLowerCase() !== 'authtoken' && k.toLowerCase() !== 'cookie') info[k] = v
    this.#clientInfo = info
    this.#log = this.#host.log.child({ agent: this.remoteAddr, client_id: this.#id, account: account.name })
    this.#log.info('agent connected', { resumed: resumes, client: stringField(extra, 'UserAgent') || stringField(extra, 'ClientType') })
    this.#host.connected?.(this, resumes)
    return {
      Version: '3',
      ClientId: this.#id,
      Extra: {
        Version: VERSION,
        Region: 'local',
        Cookie: this.#cookieFor(this.#id, account.name),
        AccountName: account.name,
        SessionDuration: 0,
        PlanName: 'warren',
        Banner: '',
      },
    }
  }
}
