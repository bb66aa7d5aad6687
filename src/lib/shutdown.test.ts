import { describe, expect, test } from 'bun:test'
import { connect, type Socket } from 'node:net'
import type { Logger } from './log.ts'
import { shutdown, type Drainable } from './shutdown.ts'

/** A logger that keeps what it is told. */
function recorder(): Logger & { lines: { level: string; msg: string; fields: Record<string, unknown> }[] } {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = []
  const at = (level: string) => (msg: string, fields: Record<string, unknown> = {}) => void lines.push({ level, msg, fields })
  const logger = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger, enabled: () => true }
  return logger
}

/** A real TCP listener on loopback as a Drainable: in flight = its open connections. */
function tcpPart(): Drainable & { port: number; open: () => number } {
  let open = 0
  const listener = Bun.listen<undefined>({
    hostname: '127.0.0.1',
    port: 0,
    socket: { open: () => void open++, close: () => void open--, data: () => {} },
  })
  return {
    port: listener.port,
    open: () => open,
    stopAccepting: () => listener.stop(false),
    inFlight: () => open,
    cut: () => listener.stop(true),
  }
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s))
    s.once('error', reject)
  })
}

const closed = (s: Socket) => new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())))

describe('shutdown()', () => {
  test('stops accepting at once, waits for the open connection, and ends as soon as it closes', async () => {
    const part = tcpPart()
    const client = await dial(part.port)
    await Bun.sleep(20)
    const log = recorder()
    setTimeout(() => client.end(), 300)
    const result = await shutdown({ tcp: part }, { drainMs: 5000, log })
    expect(result.drained).toBe(true)
    expect(result.ms).toBeGreaterThanOrEqual(250)
    expect(result.ms).toBeLessThan(2000)
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([])
    // The port no longer accepts.
    expect(await dial(part.port).then((s) => (s.destroy(), 'connected'), (e: Error & { code?: string }) => e.code)).toBe('ECONNREFUSED')
  })

  test('at the deadline what is left is cut and logged with ERR_WARREN_3020', async () => {
    const part = tcpPart()
    const client = await dial(part.port)
    await Bun.sleep(20)
    const log = recorder()
    const result = await shutdown({ tcp: part }, { drainMs: 400, log })
    expect(result.drained).toBe(false)
    expect(result.ms).toBeGreaterThanOrEqual(390)
    expect(result.ms).toBeLessThan(1500)
    await closed(client)
    expect(log.lines).toContainEqual({ level: 'warn', msg: 'shutdown drain deadline passed: cutting what is still in flight', fields: { code: 'ERR_WARREN_3020', in_flight: { tcp: 1 }, drain_ms: 400 } })
  })

  test('a second signal (hurry) cuts at once; parts are cut in order', async () => {
    const part = tcpPart()
    const client = await dial(part.port)
    await Bun.sleep(20)
    const order: string[] = []
    const named = (name: string, inner: Drainable): Drainable => ({ ...inner, cut: () => (order.push(name), inner.cut()) })
    const idle: Drainable = { stopAccepting: () => {}, inFlight: () => 0, cut: () => {} }
    const started = Date.now()
    const result = await shutdown({ tcp: named('tcp', part), agents: named('agents', idle) }, { drainMs: 10_000, log: recorder(), hurry: Bun.sleep(200) })
    expect(result.drained).toBe(false)
    expect(Date.now() - started).toBeLessThan(2000)
    expect(order).toEqual(['tcp', 'agents'])
    await closed(client)
  })

  test('a part that throws is logged and does not keep the others open', async () => {
    const part = tcpPart()
    const client = await dial(part.port)
    await Bun.sleep(20)
    const broken: Drainable = {
      stopAccepting: () => {
        throw new Error('already stopped')
      },
      inFlight: () => 0,
      cut: () => {
        throw new Error('already stopped')
      },
    }
    const log = recorder()
    const result = await shutdown({ broken, tcp: part }, { drainMs: 300, log })
    expect(result.drained).toBe(false)
    await closed(client)
    expect(log.lines.filter((l) => l.level === 'error').map((l) => [l.msg, l.fields.part])).toEqual([
      ['shutdown: stopAccepting failed', 'broken'],
      ['shutdown: cut failed', 'broken'],
    ])
  })
})
