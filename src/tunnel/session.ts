import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { VERSION } from '../cli/version.ts'
import type { Logger } from '../lib/log.ts'
import { accountForToken, type Account } from './accounts.ts'
import { MuxSession, type CloseReason, type MuxStream, type MuxTransport } from './mux.ts'
import { MuxError } from './proto/frame.ts'
import { encodeProxyHeader, encodeStreamType, errorReply, field, StreamType, stringField } from './proto/messages.ts'

/** Largest RPC request we accept, in bytes. */
const MAX_RPC_BYTES = 1024 * 1024
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
  #host: SessionHost
  #log: Logger
  #id = ''
  #account: Account | undefined
  #clientInfo: Record<string, unknown> = {}
  #heartbeatTimer: ReturnType<typeof setTimeout> | undefined
  #livenessMs = (DEFAULT_HEARTBEAT_NS + DEFAULT_TOLERANCE_NS) / 1e6
  #heartbeatMs = DEFAULT_HEARTBEAT_NS / 1e6
  #lastHeartbeat = Date.now()
  /** Measured by heartbeats the edge starts (ms); undefined until the first echo. */
  latencyMs: number | undefined

  constructor(transport: MuxTransport, remoteAddr: string, host: SessionHost) {
    this.remoteAddr = remoteAddr
    this.#host = host
    this.#log = host.log.child({ agent: remoteAddr })
    this.mux = new MuxSession(transport, {
      onStream: (stream) => this.#onStream(stream),
      onClose: (reason) => this.#onClose(reason),
    })
    // An agent that never authenticates does not hold a connection for long.
    this.#armLiveness()
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
    stream.write(encodeProxyHeader(header))
    return stream
  }

  /** Tells the agent one endpoint was stopped by the edge (StopTunnel; no reply expected). */
  stopTunnel(id: string, message: string, errorCode: string): void {
    const stream = this.mux.open()
    if (!stream) return
    stream.write(encodeStreamType(StreamType.STOP_TUNNEL))
    stream.write(new TextEncoder().encode(JSON.stringify({ Id: id, Message: message, ErrorCode: errorCode })))
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
    this.#log.info('agent disconnected', { client_id: this.#id, account: this.#account?.name, reason: reason.message, by: reason.by })
    if (this.#account) this.#host.closed(this, reason.by === 'peer')
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
    let markRead = () => {}
    const replyRead = new Promise<void>((resolve) => (markRead = resolve))
    stream.onclose = () => markRead()
    const onData = (chunk: Uint8Array) => {
      if (done) return
      text += decoder.decode(chunk, { stream: true })
      if (text.length > MAX_RPC_BYTES) {
        done = true
        return stream.terminate(MuxError.FRAME_SIZE)
      }
      let request: unknown
      try {
        request = JSON.parse(text)
      } catch {
        return // incomplete JSON: wait for more (the agent sends no length and no FIN)
      }
      done = true
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
