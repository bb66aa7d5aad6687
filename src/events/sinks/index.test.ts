import { afterEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { log } from '../../lib/log.ts'
import { EventBus } from '../bus.ts'
import { makeEvent } from '../types.ts'
import { startSinks, workerFilePath } from './index.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const fileSink = { type: 'file' as const, path: 'events.jsonl', max_bytes: 1 << 20, max_files: 1, buffer_bytes: 1 << 20 }

describe('startSinks()', () => {
  test('a sink keeps only its types and its filter; paths are relative to the config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-sinks-'))
    dirs.push(dir)
    const bus = new EventBus()
    const sinks = startSinks(bus, [{ ...fileSink, types: ['config_reload.v0'], filter: 'ev.reason != "start"' }], { baseDir: dir, log })
    expect(sinks.map((s) => s.name)).toEqual([`file:${join(dir, 'events.jsonl')}`])
    bus.emit(makeEvent('config_reload.v0', { reason: 'start', version: 1, ok: true, endpoints: 0, changed: [], errors: [] }))
    bus.emit(makeEvent('config_reload.v0', { reason: 'watch', version: 2, ok: true, endpoints: 0, changed: [], errors: [] }))
    bus.emit(makeEvent('agent_session_start.v0', { id: 'a', account: 'x', remote_addr: '', started_at: '', agent_version: '', os: '', client_info: {} }))
    bus.flush()
    await Promise.all(sinks.map((s) => s.close()))
    const lines = readFileSync(join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    expect(lines.map((e) => e.object.reason)).toEqual(['watch'])
  })

  test.each([
    { desc: 'a filter that does not compile', config: { type: 'stdout' as const, filter: 'ev.x >' }, message: /events\.sinks\[0\]\.filter: invalid filter/ },
    { desc: 'a file that cannot be opened', config: { ...fileSink, path: '/proc/warren/no/events.jsonl' }, message: /events\.sinks\[0\]: cannot open the event file/ },
  ])('$desc is a config error (ERR_WARREN_1001)', ({ config, message }) => {
    let err: unknown
    try {
      startSinks(new EventBus(), [config], { baseDir: tmpdir(), log })
    } catch (e) {
      err = e
    }
    expect(err).toMatchObject({ code: 'ERR_WARREN_1001', message: expect.stringMatching(message) })
  })
})

describe('workerFilePath()', () => {
  test.each([
    { desc: 'an extension', path: '/var/log/warren/events.jsonl', worker: 2, want: '/var/log/warren/events.w2.jsonl' },
    { desc: 'no extension', path: '/var/log/events', worker: 1, want: '/var/log/events.w1' },
    { desc: 'two dots', path: '/x/edge.events.log', worker: 3, want: '/x/edge.events.w3.log' },
  ])('$desc', ({ path, worker, want }) => {
    expect(workerFilePath(path, worker)).toBe(want)
  })

  test('startSinks() with `worker` writes the file sink to that worker\'s own file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warren-sinks-'))
    dirs.push(dir)
    const bus = new EventBus()
    const sinks = startSinks(bus, [fileSink], { baseDir: dir, log, worker: 2 })
    expect(sinks.map((s) => s.name)).toEqual([`file:${join(dir, 'events.w2.jsonl')}`])
    bus.emit(makeEvent('config_reload.v0', { reason: 'start', version: 1, ok: true, endpoints: 0, changed: [], errors: [] }))
    bus.flush()
    await Promise.all(sinks.map((s) => s.close()))
    expect(JSON.parse(readFileSync(join(dir, 'events.w2.jsonl'), 'utf8')).object.reason).toBe('start')
  })
})
