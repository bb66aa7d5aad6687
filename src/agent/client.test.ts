import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { TCPSocketListener } from 'bun'
import { randomBytes } from 'node:crypto'
import { selfSigned } from '../../test/e2e/framework/certs.ts'
import type { Logger } from '../lib/log.ts'
import { Secret } from '../lib/secret.ts'
import { makeAccount } from '../tunnel/accounts.ts'
import type { MuxStream } from '../tunnel/mux.ts'
import { FrameReader, type Frame } from '../tunnel/proto/frame.ts'
import { StreamType, type ProxyHeader } from '../tunnel/proto/messages.ts'
import { AgentSession } from '../tunnel/session.ts'
import { parseEdgeError, parseServerAddr, TunnelClient, TunnelError } from './client.ts'

// The agent's client against the edge's own session code (src/tunnel/session.ts) over real TLS.
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet, enabled: () => false }
const cert = selfSigned(['localhost', '127.0.0.1'])
const sessions: AgentSession[] = []
const firstFrames: Frame[] = []
const binds: unknown[] = []
let listener: TCPSocketListener<{ session: AgentSession; reader: FrameReader }>

beforeAll(() => {
  const host = {
    accounts: () => [makeAccount({ name: 'alice', authtokens: ['good-token'], domains: ['*.example.com'] })],
    cookieSecret: randomBytes(32),
    log: quiet,
    bind: (_s: AgentSession, req: unknown) => {
      binds.push(req)
      return { Id: 'tn_test', URL: 'https://x.example.com', Proto: 'https', Opts: {}, Extra: { Token: '' } }
    },
    unbind: () => ({}),
    closed: () => {},
  }
  listener = Bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    tls: { cert: cert.cert, key: cert.key },
    socket: {
      open(socket) {
        const session = new AgentSession({ write: (b) => socket.write(b), end: () => void socket.end(), terminate: () => socket.terminate() }, 'test', host)
        sessions.push(session)
        socket.data = { session, reader: new FrameReader() }
      },
      data(socket, chunk) {
        if (firstFrames.length < 2) firstFrames.push(...socket.data.reader.push(chunk.slice()))
        socket.data.session.mux.feed(chunk)
      },
      drain: (socket) => socket.data.session.mux.drain(),
      close: (socket) => socket.data.session.mux.transportClosed(),
      error: () => {},
    },
  })
})
afterAll(() => {
  for (const s of sessions) s.close()
  listener.stop(true)
})

function connect(extra: Partial<Parameters<typeof TunnelClient.connect>[0]> = {}): Promise<TunnelClient> {
  return TunnelClient.connect({
    serverAddr: `127.0.0.1:${listener.port}`,
    ca: cert.cert,
    authtoken: new Secret('good-token'),
    log: quiet,
    onProxy: () => {},
    ...extra,
  })
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out')
    await Bun.sleep(5)
  }
}

describe('TunnelClient', () => {
  test('opens the heartbeat stream (id 3) first, then Auth (id 5), like ngrok agents', async () => {
    const client = await connect()
    client.close()
    expect(firstFrames[0]).toMatchObject({ type: 1, flags: 2, streamId: 3 })
    expect([...firstFrames[0]!.body.subarray(0, 4)]).toEqual([0xff, 0xff, 0xff, 0xff])
    const auth = firstFrames.find((f) => f.streamId === 5)!
    expect(auth.flags & 2).toBe(2)
    expect([...auth.body.subarray(0, 4)]).toEqual([0, 0, 0, 0])
  })

  test('authenticates and gets a session id, a cookie and the account', async () => {
    const client = await connect()
    expect(client.auth.clientId).toMatch(/^[0-9a-f]{24}$/)
    expect(client.auth.cookie).not.toBe('')
    expect(client.auth.accountName).toBe('alice')
    client.close()
  })

  test('a bad authtoken is a fatal TunnelError with the ngrok code', async () => {
    const error = await connect({ authtoken: new Secret('bad') }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TunnelError)
    expect(error).toMatchObject({ code: 'ERR_NGROK_107', fatal: true })
    expect((error as Error).message).toContain('authtoken you specified is invalid')
  })

  test('resumes with the old ClientId and Cookie; a wrong cookie gets a new id', async () => {
    const first = await connect()
    const { clientId, cookie } = first.auth
    first.terminate()
    const again = await connect({ resume: { clientId, cookie } })
    expect(again.auth.clientId).toBe(clientId)
    again.close()
    const forged = await connect({ resume: { clientId, cookie: 'forged' } })
    expect(forged.auth.clientId).not.toBe(clientId)
    forged.close()
  })

  test('an untrusted certificate fails the handshake with a hint about --server-ca', async () => {
    const error = await connect({ ca: undefined }).catch((e: unknown) => e)
    expect(error).toMatchObject({ fatal: true })
    expect((error as Error).message).toContain('--server-ca')
  })

  test('an unreachable edge is a retryable TunnelError', async () => {
    const error = await connect({ serverAddr: '127.0.0.1:1' }).catch((e: unknown) => e)
    expect(error).toMatchObject({ fatal: false })
    expect((error as Error).message).toContain('connection refused')
  })

  test('binds, reads the reply, and sends what it was given', async () => {
    const client = await connect()
    const reply = await client.bind({ Id: '', Proto: 'https', Opts: { URL: '' }, Extra: { Token: '' } })
    expect(reply).toEqual({ id: 'tn_test', url: 'https://x.example.com', proto: 'https' })
    expect(binds.at(-1)).toMatchObject({ Proto: 'https' })
    client.close()
  })

  test('proxy streams arrive with their header and data, and carry replies back', async () => {
    const got: { header: ProxyHeader; rest: string }[] = []
    let stream: MuxStream | undefined
    const client = await connect({
      onProxy(s, header, rest) {
        got.push({ header, rest: new TextDecoder().decode(rest) })
        stream = s
        s.write(new TextEncoder().encode('pong'))
        s.end()
      },
    })
    const session = sessions.at(-1)!
    const edgeSide = session.openProxy({ Id: 'tn_test', ClientAddr: '1.2.3.4:5678', Proto: 'tcp', EdgeType: '1', PassthroughTLS: false })!
    let answer = ''
    edgeSide.ondata = (c) => (answer += new TextDecoder().decode(c))
    edgeSide.write(new TextEncoder().encode('ping'))
    await until(() => answer === 'pong')
    expect(got[0]!.header).toEqual({ Id: 'tn_test', ClientAddr: '1.2.3.4:5678', Proto: 'tcp', EdgeType: '1', PassthroughTLS: false })
    expect(stream!.id % 2).toBe(0)
    client.close()
  })

  test('echoes heartbeats the edge starts, and measures its own', async () => {
    const client = await connect({ heartbeatIntervalMs: 50 })
    await until(() => client.latencyMs !== undefined)
    const session = sessions.at(-1)!
    const hb = session.mux.open()!
    let echoed = new Uint8Array(0)
    hb.ondata = (c) => (echoed = new Uint8Array([...echoed, ...c]))
    hb.write(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4]))
    await until(() => echoed.length === 4)
    expect([...echoed]).toEqual([1, 2, 3, 4])
    client.close()
  })

  test('answers Stop and Restart through its callback, refuses Update, and hears StopTunnel', async () => {
    const commands: string[] = []
    const stopped: string[] = []
    const client = await connect({
      onCommand: (c) => (commands.push(c), undefined),
      onStopTunnel: (id, message, code) => stopped.push(`${id} ${message} ${code}`),
    })
    const session = sessions.at(-1)!
    expect(await session.command(StreamType.STOP)).toEqual({})
    expect(await session.command(StreamType.RESTART)).toEqual({})
    expect(await session.command(StreamType.UPDATE, { Version: '', PermitMajorVersion: false })).toMatchObject({ Error: expect.stringContaining('package manager') })
    session.stopTunnel('tn_test', 'removed by admin', 'ERR_NGROK_1234')
    await until(() => stopped.length === 1)
    expect(commands).toEqual(['stop', 'restart'])
    expect(stopped).toEqual(['tn_test removed by admin ERR_NGROK_1234'])
    client.close()
  })

  test('closed resolves when the edge goes away', async () => {
    const client = await connect()
    sessions.at(-1)!.close('edge shutting down')
    const reason = await client.closed
    expect(reason.by).toBe('peer')
    expect(client.isClosed).toBe(true)
  })
})

describe('parseEdgeError()', () => {
  test.each([
    { text: 'The authtoken you specified is invalid. (ERR_WARREN_4002)\n\nERR_NGROK_107', message: 'The authtoken you specified is invalid. (ERR_WARREN_4002)', code: 'ERR_NGROK_107' },
    { text: 'plain failure', message: 'plain failure', code: undefined },
  ])('$text', ({ text, message, code }) => {
    expect(parseEdgeError(text)).toEqual({ message, code })
  })
})

describe('parseServerAddr()', () => {
  test.each([
    { addr: 'edge.example.com:4443', want: { host: 'edge.example.com', port: 4443 } },
    { addr: 'edge.example.com', want: { host: 'edge.example.com', port: 443 } },
    { addr: 'tls://edge.example.com:4443', want: { host: 'edge.example.com', port: 4443 } },
    { addr: '127.0.0.1:4443', want: { host: '127.0.0.1', port: 4443 } },
    { addr: '[::1]:4443', want: { host: '::1', port: 4443 } },
    { addr: '[::1]', want: { host: '::1', port: 443 } },
  ])('$addr', ({ addr, want }) => {
    expect(parseServerAddr(addr)).toEqual(want)
  })
  test('a bad port throws', () => {
    expect(() => parseServerAddr('edge:99999')).toThrow(RangeError)
  })
})
