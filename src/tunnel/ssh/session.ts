import { randomBytes } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import { utils, type AuthContext, type ClientInfo, type Connection, type ServerChannel, type Session, type TcpipBindInfo } from 'ssh2'
import type { TunnelStream } from '../../endpoints/endpoint.ts'
import type { RequestTally, TcpConnectionClosedEvent } from '../../events/types.ts'
import { CODES, WarrenError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/log.ts'
import { accountForSshKey, accountForToken, type Account } from '../accounts.ts'
import type { TunnelSession } from '../registry.ts'
import type { ProxyHeader } from '../proto/messages.ts'
import type { RpcReply } from '../session.ts'
import { ChannelStream } from './channel-stream.ts'
import { parseSshCommand, sshBindRequest, SSH_USAGE, type SshCommand, type SshForward } from './command.ts'

/** A client that has not logged in by then is cut off. */
const LOGIN_TIMEOUT_MS = 30_000
/** Login attempts (keys and passwords) one connection may make. */
const MAX_AUTH_ATTEMPTS = 10
/** How long `-R` forwards wait for the command (`http`, `tcp`, `tls`) before they are refused. */
const COMMAND_WAIT_MS = 5_000
/** How long the client may take to open a forwarded channel (it connects to its upstream first). */
const CHANNEL_OPEN_TIMEOUT_MS = 10_000
/** Console lines are dropped while this much output waits for a client that does not read. */
const MAX_CONSOLE_BACKLOG = 256 * 1024
/**
 * Console lines gather this long before they go out in one channel write: every write is an SSH packet
 * the edge seals and the client opens and copies to its terminal, and under load a write per event-loop
 * turn was a packet per few requests. A person reading the console does not see 50 ms.
 */
const CONSOLE_FLUSH_MS = 50

/** What an SSH session needs from the edge. */
export interface SshSessionHost {
  accounts(): readonly Account[]
  /** Base domain (tcp:// endpoints without a name are `tcp.<domain>:<port>`). */
  domain: string
  log: Logger
  bind(session: SshSession, request: unknown): RpcReply
  unbind(session: SshSession, request: unknown): RpcReply
  /** The connection ended: its endpoints go at once (an SSH client never resumes a session). */
  closed(session: SshSession): void
  /** The client logged in. */
  connected(session: SshSession): void
  /**
   * Sends the requests and tcp connections of endpoint `ep_<id>` to `session`'s console
   * (`requestDone`, `connectionClosed`), or stops that with `undefined`. Without it nothing is printed.
   */
  routeConsole?(endpointId: string, session: SshSession | undefined): void
}

interface PendingForward {
  forward: SshForward
  accept: ((port?: number) => void) | undefined
  reject: (() => void) | undefined
}

/** `ERR_WARREN_4003: Account "x" does not own …` from a Bind reply's error text. */
function replyError(error: string): string {
  const first = error.split('\n')[0] ?? error
  const m = /^(.*) \((ERR_WARREN_\d+)\)$/s.exec(first)
  return m ? `${m[2]}: ${m[1]}` : first
}


/**
 * One SSH connection to the front door: logs in as an account (a key from `ssh_keys`, or an authtoken
 * as the password), turns each `-R` forward plus the command (`http`, `tcp`, `tls` and agent flags) into
 * an agent endpoint through the registry, and carries each public connection on a forwarded-tcpip
 * channel. The session channel shows the URLs, then one line per request.
 */
export class SshSession implements TunnelSession {
  readonly id = `ssh_${randomBytes(12).toString('hex')}`
  readonly remoteAddr: string
  readonly connectedAt = Date.now()
  readonly latencyMs = undefined
  readonly #conn: Connection
  readonly #host: SshSessionHost
  #log: Logger
  #account: Account | undefined
  #closed = false
  #authAttempts = 0
  #clientInfo: Record<string, unknown>
  #command: SshCommand | undefined
  #console: ServerChannel | undefined
  #pending: PendingForward[] = []
  /** Channel opens not answered yet: they fail at once when the connection closes (not after the open timeout). */
  readonly #opening = new Set<(err: Error) => void>()
  /** Tunnel id → the forward it serves (the bind address and port the client registered). */
  readonly #forwards = new Map<string, SshForward>()
  #commandTimer: ReturnType<typeof setTimeout> | undefined
  /** Console lines waiting for `#flushLines`. */
  #lines = ''
  /** The time prefix of the last line, and the millisecond it is for. */
  #clock = ''
  #clockMs = 0

  constructor(conn: Connection, info: ClientInfo, host: SshSessionHost) {
    this.#conn = conn
    this.#host = host
    this.remoteAddr = `${info.ip.includes(':') ? `[${info.ip}]` : info.ip}:${info.port}`
    this.#clientInfo = { ClientType: 'ssh', Version: info.header.versions.software, OS: '' }
    this.#log = host.log.child({ ssh: this.remoteAddr })
    const loginTimer = setTimeout(() => {
      if (!this.#account) this.#log.info('ssh client did not log in in time', { code: CODES.SSH_AUTH_FAILED })
      if (!this.#account) conn.end()
    }, LOGIN_TIMEOUT_MS)
    loginTimer.unref?.()
    conn.on('authentication', (ctx) => this.#authenticate(ctx))
    conn.on('ready', () => {
      clearTimeout(loginTimer)
      this.#log = host.log.child({ ssh: this.remoteAddr, client_id: this.id, account: this.#account?.name })
      this.#log.info('ssh client logged in', { client: info.header.versions.software })
      host.connected(this)
    })
    conn.on('request', (accept, reject, name, data) => {
      if (name === 'tcpip-forward') this.#onForward({ forward: { bindAddr: (data as TcpipBindInfo).bindAddr, bindPort: (data as TcpipBindInfo).bindPort }, accept, reject })
      else if (name === 'cancel-tcpip-forward') this.#onCancel(data as TcpipBindInfo, accept, reject)
      else reject?.()
    })
    conn.on('session', (accept) => this.#onSession(accept()))
    // `-L`/`-D` (direct-tcpip) would make the edge a proxy into its own network: refused.
    conn.on('tcpip', (_accept, reject) => reject())
    conn.on('error', (err) => this.#log.debug('ssh connection error', { error: err.message }))
    conn.on('close', () => this.#onClose())
  }

  get account(): Account | undefined {
    return this.#account
  }

  get clientInfo(): Readonly<Record<string, unknown>> {
    return this.#clientInfo
  }

  /** The registry's view of liveness (the same field as an agent's muxado session). */
  get mux(): { readonly closed: boolean } {
    return { closed: this.#closed }
  }

  /** An SSH client is there until its connection closes (the listener's keepalives close a dead one). */
  get disconnected(): boolean {
    return this.#closed
  }

  /** The edge stopped one of this session's endpoints: it gets no more connections, and the console says why. */
  stopTunnel(id: string, message: string, errorCode: string): void {
    if (!this.#forwards.delete(id)) return
    this.#host.routeConsole?.(`ep_${id}`, undefined)
    this.#print(`${errorCode}: ${message}\n`)
  }

  /**
   * One console line per request on this session's endpoints, like ngrok's. Called inline for every
   * answered request (the listener routes them by endpoint: no event is built for it); the lines of
   * CONSOLE_FLUSH_MS go out in one channel write, since a write per line cost an SSH packet per request.
   */
  requestDone(t: RequestTally): void {
    this.#line(`${t.method.padEnd(7)} ${t.path.padEnd(32)} ${t.status} ${STATUS_CODES[t.status] ?? ''}\n`)
  }

  /** One console line per tcp connection on this session's endpoints. */
  connectionClosed(ev: TcpConnectionClosedEvent): void {
    const c = ev.object.conn
    this.#line(`${ev.object.protocol} ${c.client_ip}:${c.client_port} closed (${c.bytes_in} B in, ${c.bytes_out} B out)\n`)
  }

  /** Opens a forwarded-tcpip channel to the client for one public connection. */
  openProxy(header: ProxyHeader): Promise<TunnelStream | undefined> | undefined {
    const forward = this.#forwards.get(header.Id)
    if (!forward || this.#closed) return undefined
    const i = header.ClientAddr.lastIndexOf(':')
    const ip = header.ClientAddr.slice(0, i).replace(/^\[|\]$/g, '')
    const port = Number(header.ClientAddr.slice(i + 1)) || 0
    return new Promise((resolve, reject) => {
      let late = false
      const fail = (err: Error) => {
        late = true
        clearTimeout(timer)
        this.#opening.delete(fail)
        reject(err)
      }
      // OpenSSH answers once its own connect to the upstream is done; a black-holed upstream must not hold the request for minutes.
      const timer = setTimeout(() => fail(new Error('the ssh client did not open the channel in time')), CHANNEL_OPEN_TIMEOUT_MS)
      this.#opening.add(fail)
      this.#conn.forwardOut(forward.bindAddr, forward.bindPort, ip, port, (err, channel) => {
        clearTimeout(timer)
        this.#opening.delete(fail)
        if (late) return void channel?.close()
        if (err) {
          // The client could not reach its upstream (`-R …:localhost:80` with nothing on port 80).
          this.#log.info('ssh client refused a forwarded connection', { tunnel: header.Id, error: err.message })
          return reject(err)
        }
        resolve(new ChannelStream(channel))
      })
    })
  }

  /** Ends the connection (the API's stop, edge shutdown). */
  close(message = 'edge shutting down'): void {
    if (this.#closed) return
    this.#print(`\nsession closed: ${message}\n`)
    this.#endConsole(0)
  }

  /** Agent commands (restart) have no meaning over SSH. */
  command(): Promise<unknown> {
    return Promise.resolve({ Error: 'an SSH session cannot restart; the client reconnects by running ssh again' })
  }

  #authenticate(ctx: AuthContext): void {
    if (++this.#authAttempts > MAX_AUTH_ATTEMPTS) {
      ctx.reject()
      this.#conn.end()
      return
    }
    const accounts = this.#host.accounts()
    if (ctx.method === 'password') {
      const account = accountForToken(accounts, ctx.password)
      if (account) return this.#accept(ctx, account)
      this.#log.warn('ssh login refused', { code: CODES.SSH_AUTH_FAILED, method: 'password', user: ctx.username })
      return ctx.reject(['publickey', 'password'])
    }
    if (ctx.method === 'publickey') {
      const account = accountForSshKey(accounts, ctx.key.data)
      if (!account) {
        this.#log.warn('ssh login refused', { code: CODES.SSH_AUTH_FAILED, method: 'publickey', key_type: ctx.key.algo, user: ctx.username })
        return ctx.reject(['publickey', 'password'])
      }
      // Without a signature the client only asks whether the key would do; it signs next.
      if (!ctx.signature || !ctx.blob) return ctx.accept()
      const parsed = utils.parseKey(ctx.key.data)
      const key = Array.isArray(parsed) ? parsed[0] : parsed
      if (key && !(key instanceof Error) && key.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) return this.#accept(ctx, account)
      this.#log.warn('ssh login refused: bad signature', { code: CODES.SSH_AUTH_FAILED, key_type: ctx.key.algo })
      return ctx.reject(['publickey', 'password'])
    }
    ctx.reject(['publickey', 'password'])
  }

  #accept(ctx: AuthContext, account: Account): void {
    this.#account = account
    ctx.accept()
  }

  #onSession(channel: Session): void {
    channel.on('pty', (accept) => accept?.())
    channel.on('env', (accept) => accept?.())
    channel.on('window-change', (accept) => accept?.())
    channel.on('shell', (accept) => {
      const out = accept()
      out.stderr.write(`${CODES.SSH_COMMAND_INVALID}: a command is required: http, tcp or tls\n${SSH_USAGE}\n`)
      out.exit(2)
      out.end()
      this.#rejectPending()
    })
    channel.on('exec', (accept, _reject, info) => {
      const out = accept()
      if (this.#console) {
        out.stderr.write(`${CODES.SSH_COMMAND_INVALID}: one command per SSH connection\n`)
        out.exit(2)
        return void out.end()
      }
      this.#console = out
      out.on('error', () => {})
      // The client's stdin is not read (ssh -T … < /dev/null is fine); closing it ends nothing.
      out.on('data', () => {})
      try {
        this.#command = parseSshCommand(info.command)
      } catch (err) {
        return this.#fail(err)
      }
      clearTimeout(this.#commandTimer)
      const account = this.#account!
      this.#print(`warren SSH front door\nAccount     ${account.name}\nSession     ${this.id}\n`)
      for (const p of this.#pending.splice(0)) if (!this.#bind(p)) return
    })
  }

  #onForward(p: PendingForward): void {
    if (this.#command) return void this.#bind(p)
    this.#pending.push(p)
    if (this.#commandTimer) return
    this.#commandTimer = setTimeout(() => {
      if (this.#command || this.#closed) return
      this.#log.warn('ssh forward without a command (ssh -N?): refused', { code: CODES.SSH_COMMAND_INVALID })
      this.#rejectPending()
      this.#conn.end()
    }, COMMAND_WAIT_MS)
    this.#commandTimer.unref?.()
  }

  #onCancel(info: TcpipBindInfo, accept: (() => void) | undefined, reject: (() => void) | undefined): void {
    for (const [id, f] of this.#forwards)
      if (f.bindAddr === info.bindAddr && f.bindPort === info.bindPort) {
        this.#forwards.delete(id)
        this.#host.routeConsole?.(`ep_${id}`, undefined)
        this.#host.unbind(this, { Id: id })
        return accept?.()
      }
    reject?.()
  }

  /** Binds one forward; false (after telling the client) when it was refused, which ends the session. */
  #bind(p: PendingForward): boolean {
    const { forward } = p
    let reply: RpcReply
    try {
      const request = sshBindRequest(this.#command!, forward, { domain: this.#host.domain, description: `ssh -R ${forward.bindAddr}:${forward.bindPort} from ${this.remoteAddr}` })
      reply = this.#host.bind(this, request)
    } catch (err) {
      p.reject?.()
      this.#fail(err)
      return false
    }
    if (typeof reply.Error === 'string' && reply.Error) {
      p.reject?.()
      this.#fail(new Error(replyError(reply.Error)))
      return false
    }
    const id = String(reply.Id)
    const url = String(reply.URL)
    // Port 0 asks the server to choose: OpenSSH then matches forwarded channels by the port we answer.
    const chosen = forward.bindPort !== 0 ? forward.bindPort : Number(/:(\d+)$/.exec(url)?.[1] ?? (url.startsWith('http:') ? 80 : 443))
    this.#forwards.set(id, { bindAddr: forward.bindAddr, bindPort: chosen })
    this.#host.routeConsole?.(`ep_${id}`, this)
    p.accept?.(chosen)
    this.#print(`Forwarding  ${url}\n`)
    this.#log.info('ssh endpoint bound', { url, tunnel: id })
    return true
  }

  #rejectPending(): void {
    for (const p of this.#pending.splice(0)) p.reject?.()
  }

  /** Tells the client what went wrong (with its code) and ends the session. */
  #fail(err: unknown): void {
    const text = err instanceof WarrenError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err)
    this.#log.info('ssh session refused', { error: text.split('\n')[0] })
    this.#rejectPending()
    this.#console?.stderr.write(`${text}\n`)
    this.#endConsole(1)
  }

  /**
   * Sends the exit status and closes the session channel, then the connection once the client closed
   * the channel too (so ssh reports our status, not a lost connection); at most a second later anyway.
   */
  #endConsole(status: number): void {
    const out = this.#console
    const end = (): void => void this.#conn.end()
    if (!out) return end()
    out.once('close', end)
    setTimeout(end, 1000).unref?.()
    out.exit(status)
    out.end()
  }

  /** Writes `text` to the console, after the request lines still waiting (so they keep their order). */
  #print(text: string): void {
    if (this.#lines !== '') {
      text = this.#lines + text
      this.#lines = ''
    }
    const out = this.#console
    if (!out || !out.writable || out.writableLength > MAX_CONSOLE_BACKLOG) return
    out.write(text)
  }

  #line(text: string): void {
    if (!this.#console || this.#closed) return
    const now = Date.now()
    if (now !== this.#clockMs) {
      this.#clockMs = now
      this.#clock = `${new Date(now).toISOString().slice(11, 23)} UTC  `
    }
    if (this.#lines === '') setTimeout(() => this.#lines !== '' && this.#print(''), CONSOLE_FLUSH_MS).unref?.()
    // Lines beyond the backlog a client that does not read may hold are dropped, as #print drops them.
    if (this.#lines.length < MAX_CONSOLE_BACKLOG) this.#lines += this.#clock + text
  }

  #onClose(): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#commandTimer)
    for (const id of this.#forwards.keys()) this.#host.routeConsole?.(`ep_${id}`, undefined)
    this.#rejectPending()
    for (const fail of this.#opening) fail(new Error('the ssh client disconnected before opening the channel'))
    if (this.#account) {
      this.#log.info('ssh client disconnected')
      this.#host.closed(this)
    }
  }
}
