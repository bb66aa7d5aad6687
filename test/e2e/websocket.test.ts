import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { eventually, startEdge, type Edge } from './framework/process.ts'
import { startUpstream } from './framework/upstreams.ts'

const upstream = startUpstream('ws-origin')
let edge: Edge
beforeAll(async () => {
  const forward = (host: string, port: number) =>
    `url: http://${host}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:${port}"}}]\n`
  edge = await startEdge({ policies: { 'ws.yml': forward('ws.warren.localhost', upstream.port!), 'dead.yml': forward('dead.warren.localhost', 1) } })
})
afterAll(async () => {
  await edge?.stop()
  upstream.stop(true)
})

function open(host: string, protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${edge.httpPort}/socket`, { headers: { host }, protocols } as unknown as string[])
  ws.binaryType = 'arraybuffer'
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws)
    ws.onerror = () => reject(new Error('websocket failed to open'))
  })
}

function next(ws: WebSocket): Promise<MessageEvent> {
  return new Promise((resolve) => ws.addEventListener('message', resolve, { once: true }))
}

describe('websockets through the edge', () => {
  test('text and binary frames echo through forward-external', async () => {
    const ws = await open('ws.warren.localhost')
    ws.send('hello')
    expect((await next(ws)).data).toBe('hello')
    const bytes = new Uint8Array(200_000).map((_, i) => i % 251)
    ws.send(bytes)
    const back = new Uint8Array((await next(ws)).data as ArrayBuffer)
    expect(back.length).toBe(bytes.length)
    expect(Bun.hash(back)).toBe(Bun.hash(bytes))
    ws.close(1000)
  })

  test('the upgrade is logged as 101 (not as the 200 of the answer object behind it)', async () => {
    const ws = await open('ws.warren.localhost')
    ws.close(1000)
    const line = () => edge.logs().split('\n').find((l) => l.includes('"msg":"request"') && l.includes('"path":"/socket"'))
    expect(await eventually(async () => line() !== undefined, 5000)).toBe(true)
    expect(JSON.parse(line()!).status).toBe(101)
  })

  test('many messages keep their order', async () => {
    const ws = await open('ws.warren.localhost')
    const got: string[] = []
    const done = new Promise<void>((resolve) => {
      ws.onmessage = (e) => {
        got.push(e.data as string)
        if (got.length === 500) resolve()
      }
    })
    for (let i = 0; i < 500; i++) ws.send(`m${i}`)
    await done
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => `m${i}`))
    ws.close()
  })

  test('the subprotocol is negotiated with the upstream', async () => {
    const ws = await open('ws.warren.localhost', ['chat'])
    expect(ws.protocol).toBe('chat')
    ws.close()
  })

  test('close codes and reasons pass through from the upstream', async () => {
    const ws = await open('ws.warren.localhost')
    const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve))
    ws.send('close-me')
    const event = await closed
    expect(event.code).toBe(4001)
    expect(event.reason).toBe('bye')
  })

  test('a dead upstream fails the upgrade with 502 and a code', async () => {
    const res = await fetch(`http://127.0.0.1:${edge.httpPort}/socket`, {
      headers: { host: 'dead.warren.localhost', upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' },
    })
    expect(res.status).toBe(502)
    expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_8012')
  })
})
