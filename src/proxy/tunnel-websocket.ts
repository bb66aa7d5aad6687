import { randomBytes } from 'node:crypto'
import type { TunnelStream, TunnelTarget } from '../endpoints/endpoint.ts'

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const
/** Messages larger than this close the connection (1009): the edge does not buffer without bound. */
const MAX_MESSAGE = 64 * 1024 * 1024

/** Headers the edge writes itself on the upstream handshake. */
const OWN = new Set(['upgrade', 'connection', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'content-length', 'transfer-encoding'])

/**
 * A websocket client over an agent's proxy stream, shaped like the parts of `WebSocket` the edge's
 * websocket relay uses (send, close, readyState, onmessage, onclose, onerror, protocol). Bun's own
 * WebSocket cannot run over a tunnel stream, so the handshake and RFC 6455 framing are done here.
 * Extensions are never offered, so frames are never compressed.
 */
/** What the framing needs from a byte stream: a mux stream, or a client socket after `101`. */
export type FrameStream = Pick<TunnelStream, 'write' | 'end' | 'terminate' | 'ondata' | 'ondrain' | 'onclose'>

export class TunnelWebSocket {
  readyState: number = WebSocket.CONNECTING
  protocol = ''
  onmessage: (e: { data: string | ArrayBuffer }) => void = () => {}
  onclose: (e: { code: number; reason: string }) => void = () => {}
  onerror: () => void = () => {}
  readonly #stream: FrameStream
  /** Frames are masked by the client side only (RFC 6455 §5.3). */
  readonly #masked: boolean
  #buf = new Uint8Array(0)
  #fragments: Uint8Array[] = []
  #fragmentOp = 0
  #queue: Uint8Array[] = []
  #closeSent = false

  private constructor(stream: FrameStream, masked = true) {
    this.#stream = stream
    this.#masked = masked
  }

  /**
   * The server side of a websocket whose handshake is already answered (the HTTP/1 engine after it
   * wrote `101`): frames from `stream` are the client's, and frames sent are not masked.
   */
  static accepted(stream: FrameStream, rest: Uint8Array): TunnelWebSocket {
    const ws = new TunnelWebSocket(stream, false)
    ws.readyState = WebSocket.OPEN
    stream.ondata = (c) => ws.#receive(c)
    stream.ondrain = () => ws.#flush()
    stream.onclose = () => ws.#closed(1006, '')
    if (rest.length) queueMicrotask(() => ws.#receive(rest))
    return ws
  }

  /**
   * Opens the stream, sends the upgrade request and waits for `101`. Resolves undefined when the agent
   * is unreachable or the upstream refuses the upgrade.
   */
  static async connect(tunnel: TunnelTarget, clientAddr: string, request: { path: string; headers: Headers; protocols: string[] }, timeoutMs: number): Promise<TunnelWebSocket | undefined> {
    const stream = await tunnel.connect(clientAddr)
    if (!stream) return undefined
    const ws = new TunnelWebSocket(stream)
    const lines = [`GET ${request.path} HTTP/1.1`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13']
    request.headers.forEach((value, name) => {
      if (!OWN.has(name) && name !== 'sec-websocket-protocol') lines.push(`${name}: ${value}`)
    })
    if (request.protocols.length) lines.push(`Sec-WebSocket-Protocol: ${request.protocols.join(', ')}`)
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      let head = ''
      stream.ondata = (chunk) => {
        head += Buffer.from(chunk).toString('latin1')
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return void (head.length > 65536 && resolve(false))
        clearTimeout(timer)
        const [status, ...fields] = head.slice(0, end).split('\r\n')
        if (!/^HTTP\/1\.1 101 /.test(status ?? '')) return resolve(false)
        for (const f of fields) {
          const i = f.indexOf(':')
          if (f.slice(0, i).trim().toLowerCase() === 'sec-websocket-protocol') ws.protocol = f.slice(i + 1).trim()
        }
        const rest = Buffer.from(head.slice(end + 4), 'latin1')
        stream.ondata = (c) => ws.#receive(c)
        if (rest.length) ws.#receive(rest)
        resolve(true)
      }
      stream.onclose = () => (clearTimeout(timer), resolve(false))
      stream.write(new TextEncoder().encode(lines.join('\r\n') + '\r\n\r\n'))
    })
    if (!ok) {
      stream.terminate()
      return undefined
    }
    ws.readyState = WebSocket.OPEN
    stream.ondrain = () => ws.#flush()
    stream.onclose = () => ws.#closed(1006, '')
    return ws
  }

  send(data: string | ArrayBuffer | Uint8Array): void {
    if (this.readyState !== WebSocket.OPEN) return
    const text = typeof data === 'string'
    this.#frame(text ? OP.TEXT : OP.BINARY, text ? new TextEncoder().encode(data) : new Uint8Array(data as ArrayBuffer))
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState >= WebSocket.CLOSING) return
    this.readyState = WebSocket.CLOSING
    this.#sendClose(code, reason)
  }

  #sendClose(code: number, reason: string): void {
    if (this.#closeSent) return
    this.#closeSent = true
    const r = new TextEncoder().encode(reason).subarray(0, 123)
    const body = new Uint8Array(2 + r.length)
    new DataView(body.buffer).setUint16(0, code)
    body.set(r, 2)
    this.#frame(OP.CLOSE, body)
    this.#stream.end()
  }

  #frame(op: number, payload: Uint8Array): void {
    const n = payload.length
    const ext = n < 126 ? 0 : n < 65536 ? 2 : 8
    const maskBytes = this.#masked ? 4 : 0
    const out = new Uint8Array(2 + ext + maskBytes + n)
    out[0] = 0x80 | op
    out[1] = (this.#masked ? 0x80 : 0) | (ext === 0 ? n : ext === 2 ? 126 : 127)
    const view = new DataView(out.buffer)
    if (ext === 2) view.setUint16(2, n)
    else if (ext === 8) view.setBigUint64(2, BigInt(n))
    if (!this.#masked) {
      out.set(payload, 2 + ext)
      return this.#write(out)
    }
    const mask = randomBytes(4)
    out.set(mask, 2 + ext)
    for (let i = 0; i < n; i++) out[2 + ext + 4 + i] = payload[i]! ^ mask[i & 3]!
    this.#write(out)
  }

  #write(bytes: Uint8Array): void {
    if (this.#queue.length) return void this.#queue.push(bytes)
    const n = this.#stream.write(bytes)
    if (n < bytes.length) this.#queue.push(bytes.subarray(n))
  }

  #flush(): void {
    while (this.#queue.length) {
      const chunk = this.#queue[0]!
      const n = this.#stream.write(chunk)
      if (n < chunk.length) return void (this.#queue[0] = chunk.subarray(n))
      this.#queue.shift()
    }
  }

  #receive(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.#buf.length + chunk.length)
    joined.set(this.#buf)
    joined.set(chunk, this.#buf.length)
    let at = 0
    for (;;) {
      if (joined.length - at < 2) break
      const b0 = joined[at]!
      const b1 = joined[at + 1]!
      let len = b1 & 0x7f
      let off = 2
      if (len === 126) {
        if (joined.length - at < 4) break
        len = (joined[at + 2]! << 8) | joined[at + 3]!
        off = 4
      } else if (len === 127) {
        if (joined.length - at < 10) break
        const big = new DataView(joined.buffer, joined.byteOffset + at + 2, 8).getBigUint64(0)
        if (big > BigInt(MAX_MESSAGE)) return this.#fail(1009, 'message too big')
        len = Number(big)
        off = 10
      }
      const masked = (b1 & 0x80) !== 0
      const maskOff = off
      if (masked) off += 4
      if (joined.length - at < off + len) break
      let payload = joined.slice(at + off, at + off + len)
      if (masked) payload = payload.map((v, i) => v ^ joined[at + maskOff + (i & 3)]!)
      at += off + len
      this.#onFrame((b0 & 0x80) !== 0, b0 & 0x0f, payload)
      if (this.readyState === WebSocket.CLOSED) return
    }
    this.#buf = joined.slice(at)
  }

  #onFrame(fin: boolean, op: number, payload: Uint8Array): void {
    if (op === OP.PING) return this.#frame(OP.PONG, payload)
    if (op === OP.PONG) return
    if (op === OP.CLOSE) {
      const code = payload.length >= 2 ? (payload[0]! << 8) | payload[1]! : 1005
      const reason = new TextDecoder().decode(payload.subarray(2))
      this.#sendClose(code === 1005 ? 1000 : code, '')
      return this.#closed(code, reason)
    }
    if (op !== OP.CONT) this.#fragmentOp = op
    this.#fragments.push(payload)
    if (this.#fragments.reduce((n, f) => n + f.length, 0) > MAX_MESSAGE) return this.#fail(1009, 'message too big')
    if (!fin) return
    const whole = this.#fragments.length === 1 ? this.#fragments[0]! : Buffer.concat(this.#fragments)
    this.#fragments = []
    if (this.#fragmentOp === OP.TEXT) this.onmessage({ data: new TextDecoder().decode(whole) })
    else this.onmessage({ data: whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.length) as ArrayBuffer })
  }

  #fail(code: number, reason: string): void {
    this.#sendClose(code, reason)
    this.#closed(code, reason)
  }

  #closed(code: number, reason: string): void {
    if (this.readyState === WebSocket.CLOSED) return
    this.readyState = WebSocket.CLOSED
    this.onclose({ code, reason })
  }
}
