import type { Socket } from 'bun'
import { randomBytes } from 'node:crypto'
import { hostname as osHostname } from 'node:os'
import { isIP } from 'node:net'
import { VERSION } from '../cli/version.ts'
import type { Logger } from '../lib/log.ts'
import type { Secret } from '../lib/secret.ts'
import { MuxSession, type CloseReason, type MuxStream } from '../tunnel/mux.ts'
import { MuxError } from '../tunnel/proto/frame.ts'
import { encodeStreamType, field, StreamType, stringField, type ProxyHeader } from '../tunnel/proto/messages.ts'
import { concat, StreamWriter } from './stream-io.ts'

/** Largest proxy header or command we read from the edge. */
const MAX_HEADER_BYTES = 64 * 1024
const RPC_TIMEOUT_MS = 15_000
const CONNECT_TIMEOUT_MS = 10_000

/**
 * A refusal or failure of the tunnel. `code` is the `ERR_NGROK_…` line of an edge reply when there is
 * one; `fatal` means retrying with the same settings cannot help (bad authtoken, invalid bind).
 */
export class TunnelError extends Error {
  readonly code: string | undefined
  readonly fatal: boolean
  constructor(message: string, options: { code?: string | undefined; fatal: boolean }) {
    super(message)
    this.name = 'TunnelError'
    this.code = options.code
    this.fatal = options.fatal
  }
}

/** Splits an edge error (`text\n\nERR_NGROK_107`) into its text and code. */
export function parseEdgeError(text: string): { message: string; code: string | undefined } {
  const lines = text.split('\n')
  const codeLine = lines.find((l) => /^ERR_NGROK_\d+$/.test(l.trim()))
  const message = lines.filter((l) => l !== codeLine).join('\n').trim()
  return { message, code: codeLine?.trim() }
}

/** `host[:port]` (port 443 when missing, like ngrok) and an optional `tls://` prefix. */
export function parseServerAddr(addr: string): { host: string; port: number } {
  const text = addr.trim().replace(/^tls:\/\//i, '').replace(/\/$/, '')
  if (text.startsWith('[')) {
    const end = text.indexOf(']')
    const rest = text.slice(end + 1)
    return { host: text.slice(1, end), port: rest.startsWith(':') ? Number(rest.slice(1)) : 443 }
  }
  const colon = text.lastIndexOf(':')
  if (colon === -1 || text.indexOf(':') !== colon) return { host: text, port: 443 }
  const port = Number(text.slice(colon + 1))
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`invalid port in server address "${addr}"`)
  return { host: text.slice(0, colon), port }
}

export interface ClientOptions {
  /** The edge's agent port, `host[:port]`. */
  serverAddr: string
  /** PEM text of the CA(s) to trust for the edge; undefined = the default trust store. */
  ca?: string | undefined
  authtoken: Secret
  /** Session metadata shown by the edge. */
  metadata?: string | undefined
  heartbeatIntervalMs?: number | undefined
  heartbeatToleranceMs?: number | undefined
  /** Resume: the previous session's id and cookie (the edge keeps the id when the cookie matches). */
  resume?: { clientId: string; cookie: string } | undefined
  log: Logger
  /** A proxy stream for one public connection; `rest` is what followed the header. */
  onProxy(stream: MuxStream, header: ProxyHeader, rest: Uint8Array): void
  /** The edge asked to stop or restart the agent; return an error text to refuse. */
  onCommand?(command: 'stop' | 'restart'): string | undefined
  /** The edge stopped one endpoint (StopTunnel). */
  onStopTunnel?(id: string, message: string, errorCode: string): void
}

/** What the edge answered to Auth. */
export interface AuthResult {
  clientId: string
  cookie: string
  accountName: string
  region: string
  serverVersion: string
}

/** Opens the TLS connection; resolves after a successful handshake. */
function dialTls(options: ClientOptions, handlers: { data(chunk: Uint8Array): void; drain(): void; close(): void }): Promise<Socket<undefined>> {
  const { host, port } = parseServerAddr(options.serverAddr)
  return new Promise((resolve, reject) => {
    let settled = false
    const settle = (err: Error | undefined, socket?: Socket<undefined>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(socket!)
    }
    const timer = setTimeout(() => settle(new TunnelError(`Timed out connecting to ${options.serverAddr}.`, { fatal: false })), CONNECT_TIMEOUT_MS)
    Bun.connect({
      hostname: host,
      port,
      // An IP address is checked against the certificate's IP SANs and sends no SNI (like ngrok's agents).
      // Bun treats an empty `tls: {}` as no TLS at all: rejectUnauthorized keeps the object non-empty.
      tls: { rejectUnauthorized: true, ...(options.ca ? { ca: options.ca } : {}), ...(isIP(host) ? {} : { serverName: host }) },
      socket: {
        handshake(socket, success, err) {
          if (success) return settle(undefined, socket)
          const why = err?.message ?? 'handshake failed'
          settle(
            new TunnelError(
              `TLS handshake with ${options.serverAddr} failed: ${why}.${options.ca ? '' : ' If the edge uses a private CA (e.g. the dev CA from `warren ca path`), pass it with --server-ca.'}`,
              { code: (err as { code?: string } | null)?.code, fatal: true },
            ),
          )
          socket.terminate()
        },
        data: (_s, chunk) => handlers.data(chunk),
        drain: () => handlers.drain(),
        close() {
          settle(new TunnelError(`The connection to ${options.serverAddr} closed during the TLS handshake.`, { fatal: false }))
          handlers.close()
        },
        error: () => {},
        connectError(_s, err) {
          const code = (err as { code?: string }).code
          settle(new TunnelError(`Cannot connect to ${options.serverAddr}: ${code === 'ECONNREFUSED' ? 'connection refused' : err.message}.`, { code, fatal: false }))
        },
      },
    }).catch((err: Error) => settle(new TunnelError(`Cannot connect to ${options.serverAddr}: ${err.message}.`, { fatal: false })))
  })
}

/** Reads one JSON value from a stream (no length, no FIN needed); resolves on parse or end. */
function readJson(stream: MuxStream, first: Uint8Array, onValue: (value: unknown) => void, onFail: (why: string) => void): void {
  let text = ''
  const decoder = new TextDecoder()
  let done = false
  const tryParse = (final: boolean) => {
    if (done) return
    if (text === '') {
      if (final) {
        done = true
        onFail('no reply')
      }
      return
    }
    try {
      const value: unknown = JSON.parse(text)
      done = true
      onValue(value)
    } catch {
      if (final) {
        done = true
        onFail('invalid JSON')
      }
    }
  }
  const onData = (chunk: Uint8Array) => {
    text += decoder.decode(chunk, { stream: true })
    if (text.length > MAX_HEADER_BYTES) {
      done = true
      stream.terminate(MuxError.FRAME_SIZE)
      return onFail('message too large')
    }
    tryParse(false)
  }
  stream.ondata = onData
  stream.onend = () => tryParse(true)
  stream.onclose = () => tryParse(true)
  if (first.length) onData(first)
}

/**
 * One agent session with an edge: TLS, then muxado as the client (odd stream ids), a heartbeat
 * stream opened first, Auth, and RPCs for Bind/Unbind. Streams the edge opens are proxy streams
 * (handed to `onProxy`), heartbeats (echoed), or commands. Reconnecting is `reconnect.ts`'s job.
 */
export class TunnelClient {
  readonly #o: ClientOptions
  readonly #log: Logger
  readonly #mux: MuxSession
  readonly #socket: Socket<undefined>
  readonly #closed: Promise<CloseReason>
  #heartbeat: MuxStream | undefined
  #beatTimer: ReturnType<typeof setTimeout> | undefined
  #deadline: ReturnType<typeof setTimeout> | undefined
  #nonce = new Uint8Array(0)
  #sentAt = 0
  #auth: AuthResult | undefined
  /** Round trip of the last heartbeat (ms); undefined before the first echo. */
  latencyMs: number | undefined

  private constructor(options: ClientOptions, socket: Socket<undefined>, wire: { feed?: (c: Uint8Array) => void; drain?: () => void; close?: () => void }) {
    this.#o = options
    this.#log = options.log
    this.#socket = socket
    let resolveClosed!: (r: CloseReason) => void
    this.#closed = new Promise((r) => (resolveClosed = r))
    this.#mux = new MuxSession(
      { write: (b) => socket.write(b), end: () => void socket.end(), terminate: () => socket.terminate() },
      {
        onStream: (stream) => this.#onStream(stream),
        onClose: (reason) => {
          clearTimeout(this.#beatTimer)
          clearTimeout(this.#deadline)
          resolveClosed(reason)
        },
      },
      { role: 'client' },
    )
    wire.feed = (c) => this.#mux.feed(c)
    wire.drain = () => this.#mux.drain()
    wire.close = () => this.#mux.transportClosed()
  }

  /** Connects, opens the heartbeat stream and authenticates; throws TunnelError. */
  static async connect(options: ClientOptions): Promise<TunnelClient> {
    const wire: { feed?: (c: Uint8Array) => void; drain?: () => void; close?: () => void } = {}
    let pending: Uint8Array[] = []
    let closedEarly = false
    const socket = await dialTls(options, {
      data: (c) => (wire.feed ? wire.feed(c) : pending.push(c.slice())),
      drain: () => wire.drain?.(),
      close: () => (wire.close ? wire.close() : (closedEarly = true)),
    })
    const client = new TunnelClient(options, socket, wire)
    for (const c of pending) wire.feed!(c)
    pending = []
    if (closedEarly) wire.close!()
    client.#startHeartbeat()
    try {
      await client.#authenticate()
    } catch (err) {
      client.terminate()
      throw err
    }
    return client
  }

  get auth(): AuthResult {
    return this.#auth!
  }

  /** Resolves when the session ends, with why. */
  get closed(): Promise<CloseReason> {
    return this.#closed
  }

  get isClosed(): boolean {
    return this.#mux.closed
  }

  /** Sends a Bind; resolves with the edge's reply, throws TunnelError on a refusal. */
  async bind(request: Record<string, unknown>): Promise<{ id: string; url: string; proto: string }> {
    const reply = await this.#rpc(StreamType.BIND, request)
    return { id: stringField(reply, 'Id'), url: stringField(reply, 'URL'), proto: stringField(reply, 'Proto') }
  }

  async unbind(id: string): Promise<void> {
    await this.#rpc(StreamType.UNBIND, { Id: id, Extra: {} })
  }

  /** Says goodbye (GOAWAY): the edge removes this session's endpoints at once. */
  close(message = 'agent shutting down'): void {
    this.#mux.goAway(MuxError.NONE, message)
  }

  /** Drops the connection without a goodbye (the edge keeps the URLs reserved for a while). */
  terminate(): void {
    if (!this.#mux.closed) this.#mux.transportClosed()
    this.#socket.terminate()
  }

  async #authenticate(): Promise<void> {
    const intervalMs = this.#o.heartbeatIntervalMs ?? 10_000
    const toleranceMs = this.#o.heartbeatToleranceMs ?? 15_000
    const reply = await this.#rpc(StreamType.AUTH, {
      Version: ['3', '2'],
      ClientId: this.#o.resume?.clientId ?? '',
      Extra: {
        OS: process.platform,
        Arch: process.arch,
        AuthToken: this.#o.authtoken.reveal(),
        Version: VERSION,
        Hostname: osHostname(),
        UserAgent: `warren-agent/${VERSION}`,
        Metadata: this.#o.metadata ?? '',
        Cookie: this.#o.resume?.cookie ?? '',
        HeartbeatInterval: intervalMs * 1e6,
        HeartbeatTolerance: toleranceMs * 1e6,
        UpdateUnsupportedError: 'warren agents are updated by their package manager or by replacing the binary',
        StopUnsupportedError: '',
        RestartUnsupportedError: '',
        ProxyType: '',
        MutualTLS: false,
        ServiceRun: false,
        ConfigVersion: '',
        CustomInterface: false,
        CustomCAs: this.#o.ca !== undefined,
        ClientType: 'warren',
      },
    })
    const extra = field(reply, 'Extra')
    this.#auth = {
      clientId: stringField(reply, 'ClientId'),
      cookie: stringField(extra, 'Cookie'),
      accountName: stringField(extra, 'AccountName'),
      region: stringField(extra, 'Region'),
      serverVersion: stringField(extra, 'Version'),
    }
  }

  /** One RPC: type + JSON request on a new stream, one JSON reply (the edge ends with FIN). */
  #rpc(type: number, request: unknown): Promise<Record<string, unknown>> {
    const stream = this.#mux.open()
    if (!stream) return Promise.reject(new TunnelError('The session is closed.', { fatal: false }))
    const writer = new StreamWriter(stream)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.terminate()
        reject(new TunnelError('The edge did not answer in time.', { fatal: false }))
      }, RPC_TIMEOUT_MS)
      readJson(
        stream,
        new Uint8Array(0),
        (value) => {
          clearTimeout(timer)
          writer.end()
          const error = stringField(value, 'Error')
          if (error) {
            const { message, code } = parseEdgeError(error)
            return reject(new TunnelError(message, { code, fatal: true }))
          }
          resolve((value ?? {}) as Record<string, unknown>)
        },
        (why) => {
          clearTimeout(timer)
          reject(new TunnelError(this.#mux.closed ? 'The session closed before the edge answered.' : `The edge sent ${why}.`, { fatal: false }))
        },
      )
      writer.write(encodeStreamType(type))
      writer.write(JSON.stringify(request))
    })
  }

  #startHeartbeat(): void {
    const stream = this.#mux.open()
    if (!stream) return
    this.#heartbeat = stream
    stream.write(encodeStreamType(StreamType.HEARTBEAT))
    let got: Uint8Array = new Uint8Array(0)
    stream.ondata = (chunk) => {
      got = concat(got, chunk)
      while (got.length >= 4) {
        const echo = got.subarray(0, 4)
        got = got.slice(4)
        if (this.#nonce.length === 4 && echo.every((b, i) => b === this.#nonce[i])) this.#echoed()
      }
    }
    this.#beat()
  }

  #beat(): void {
    const stream = this.#heartbeat
    if (!stream || stream.closed) return
    this.#nonce = new Uint8Array(randomBytes(4))
    this.#sentAt = performance.now()
    stream.write(this.#nonce)
    const limit = (this.#o.heartbeatIntervalMs ?? 10_000) + (this.#o.heartbeatToleranceMs ?? 15_000)
    clearTimeout(this.#deadline)
    this.#deadline = setTimeout(() => {
      this.#log.warn('heartbeat timed out; reconnecting', { after_ms: limit })
      this.#mux.goAway(MuxError.WRITE_TIMEOUT, 'heartbeat timeout')
      this.#socket.terminate()
    }, limit)
  }

  #echoed(): void {
    this.latencyMs = Math.round((performance.now() - this.#sentAt) * 10) / 10
    this.#nonce = new Uint8Array(0)
    clearTimeout(this.#deadline)
    this.#beatTimer = setTimeout(() => this.#beat(), this.#o.heartbeatIntervalMs ?? 10_000)
  }

  #onStream(stream: MuxStream): void {
    // Every edge stream starts with a u32 type; proxy streams then have an int64-LE length and JSON.
    let head: Uint8Array = new Uint8Array(0)
    stream.ondata = (chunk) => {
      head = concat(head, chunk)
      if (head.length < 4) return
      const view = new DataView(head.buffer, head.byteOffset, head.length)
      const type = view.getUint32(0)
      if (type === StreamType.PROXY) {
        if (head.length < 12) return
        const length = Number(view.getBigInt64(4, true))
        if (length < 0 || length > MAX_HEADER_BYTES) return stream.terminate(MuxError.PROTOCOL)
        if (head.length < 12 + length) return
        let header: ProxyHeader
        try {
          const raw = JSON.parse(new TextDecoder().decode(head.subarray(12, 12 + length)))
          header = {
            Id: stringField(raw, 'Id'),
            ClientAddr: stringField(raw, 'ClientAddr'),
            Proto: stringField(raw, 'Proto'),
            EdgeType: stringField(raw, 'EdgeType'),
            PassthroughTLS: field(raw, 'PassthroughTLS') === true,
          }
        } catch {
          return stream.terminate(MuxError.PROTOCOL)
        }
        const rest = head.slice(12 + length)
        stream.ondata = () => {}
        return this.#o.onProxy(stream, header, rest)
      }
      const rest = head.subarray(4)
      if (type === StreamType.HEARTBEAT) return this.#echoStream(stream, rest)
      if (type === StreamType.STOP || type === StreamType.RESTART || type === StreamType.UPDATE) return this.#command(stream, type, rest)
      if (type === StreamType.STOP_TUNNEL)
        return readJson(
          stream,
          rest,
          (value) => {
            stream.end()
            this.#o.onStopTunnel?.(stringField(value, 'Id'), stringField(value, 'Message'), stringField(value, 'ErrorCode'))
          },
          () => {},
        )
      stream.terminate(MuxError.PROTOCOL)
    }
  }

  #echoStream(stream: MuxStream, first: Uint8Array): void {
    let pending: Uint8Array = new Uint8Array(0)
    const onData = (chunk: Uint8Array) => {
      const joined = concat(pending, chunk)
      const whole = joined.length - (joined.length % 4)
      if (whole > 0) stream.write(joined.slice(0, whole))
      pending = joined.slice(whole)
    }
    stream.ondata = onData
    stream.onend = () => stream.end()
    if (first.length) onData(first)
  }

  #command(stream: MuxStream, type: number, first: Uint8Array): void {
    readJson(
      stream,
      first,
      () => {
        let error: string | undefined
        if (type === StreamType.UPDATE) error = 'warren agents are updated by their package manager or by replacing the binary'
        else error = this.#o.onCommand ? this.#o.onCommand(type === StreamType.STOP ? 'stop' : 'restart') : 'the agent has not defined a callback for this operation'
        const writer = new StreamWriter(stream)
        writer.write(JSON.stringify(error ? { Error: error } : {}))
        writer.end()
      },
      () => {},
    )
  }
}
