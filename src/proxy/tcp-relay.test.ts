import { describe, expect, test } from 'bun:test'
import type { Socket } from 'bun'
import { attachRelay, newRelayConn, relayClientData, type RelayConn, type RelaySide } from './tcp-relay.ts'

/** A client socket as the relay sees it, recording pause/resume. */
function fakeClient() {
  const calls: string[] = []
  const socket = {
    data: newRelayConn(),
    write: (b: Uint8Array) => b.length,
    end() {},
    terminate() {},
    pause: () => void calls.push('pause'),
    resume: () => void calls.push('resume'),
  }
  return { socket: socket as unknown as Socket<RelayConn>, calls }
}

function upstream(takes: number): RelaySide & { got: number } {
  let left = takes
  const side = {
    got: 0,
    write(b: Uint8Array) {
      const n = Math.min(left, b.length)
      left -= n
      side.got += n
      return n
    },
    end() {},
    pause() {},
    resume() {},
    terminate() {},
  }
  return side
}

describe('bytes a client sends before its upstream is connected', () => {
  const chunk = new Uint8Array(64 * 1024)

  test('are held up to the high-water mark (1 MiB), then the client is paused', () => {
    const { socket, calls } = fakeClient()
    for (let i = 0; i < 16; i++) relayClientData(socket, chunk)
    expect(calls).toEqual([])
    relayClientData(socket, chunk)
    expect(calls).toEqual(['pause'])
    expect(socket.data.earlyBytes).toBe(17 * chunk.length)
  })

  test('reach the upstream once it opens, and a client paused for them is read again', () => {
    const { socket, calls } = fakeClient()
    for (let i = 0; i < 20; i++) relayClientData(socket, chunk)
    const up = upstream(Infinity)
    attachRelay(socket, up, {})
    expect(up.got).toBe(20 * chunk.length)
    expect(calls).toEqual(['pause', 'pause', 'pause', 'pause', 'resume'])
    expect(socket.data.earlyBytes).toBe(0)
  })

  test('stay paused when the upstream cannot take them either (the relay resumes on its drain)', () => {
    const { socket, calls } = fakeClient()
    for (let i = 0; i < 20; i++) relayClientData(socket, chunk)
    attachRelay(socket, upstream(0), {})
    expect(calls.at(-1)).toBe('pause')
    expect(calls).not.toContain('resume')
  })
})
