import { afterEach, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { log } from '../../lib/log.ts'
import { makeEvent, type WarrenEvent } from '../types.ts'
import { FileSink } from './file.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

function temp(): string {
  const d = mkdtempSync(join(tmpdir(), 'warren-events-'))
  dirs.push(d)
  return d
}

function events(n: number, pad = 0): WarrenEvent[] {
  return Array.from({ length: n }, (_, i) => makeEvent('config_reload.v0', { reason: `r${i}${'x'.repeat(pad)}`, version: i, ok: true, endpoints: 0, changed: [], errors: [] }))
}

function lines(path: string): WarrenEvent[] {
  return readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
}

describe('FileSink', () => {
  test('appends one JSON line per event, creating the directory', async () => {
    const path = join(temp(), 'sub', 'events.jsonl')
    const sink = new FileSink({ path, maxBytes: 1024 * 1024, maxFiles: 2, bufferBytes: 1024 * 1024, log })
    const batch = events(5)
    sink.accept(batch.slice(0, 2))
    sink.accept(batch.slice(2))
    await sink.close()
    expect(lines(path).map((e) => e.event_id)).toEqual(batch.map((e) => e.event_id))
    expect(sink.written).toBe(5)
  })

  test('rotates by size: <path>.1 is the newest copy, at most max_files are kept, nothing is lost in between', async () => {
    const path = join(temp(), 'events.jsonl')
    const sink = new FileSink({ path, maxBytes: 2000, maxFiles: 2, bufferBytes: 1024 * 1024, log })
    const all = events(40, 100)
    for (const e of all) sink.accept([e])
    await sink.close()
    expect(existsSync(`${path}.1`)).toBe(true)
    expect(existsSync(`${path}.2`)).toBe(true)
    expect(existsSync(`${path}.3`)).toBe(false)
    for (const f of [path, `${path}.1`, `${path}.2`]) expect(statSync(f).size).toBeLessThanOrEqual(2000)
    // The newest events are in the current file, older ones in .1, then .2; together they are a contiguous tail.
    const kept = [...lines(`${path}.2`), ...lines(`${path}.1`), ...lines(path)].map((e) => e.event_id)
    const ids = all.map((e) => e.event_id)
    expect(kept).toEqual(ids.slice(ids.length - kept.length))
  })

  test('max_files 0 replaces the file instead of keeping copies', async () => {
    const path = join(temp(), 'events.jsonl')
    const sink = new FileSink({ path, maxBytes: 1024, maxFiles: 0, bufferBytes: 1024 * 1024, log })
    for (const e of events(30, 50)) sink.accept([e])
    await sink.close()
    expect(existsSync(`${path}.1`)).toBe(false)
    expect(statSync(path).size).toBeLessThanOrEqual(1024)
  })

  test('a full buffer drops events and counts them', async () => {
    const path = join(temp(), 'events.jsonl')
    const sink = new FileSink({ path, maxBytes: 10 * 1024 * 1024, maxFiles: 1, bufferBytes: 1024, log })
    sink.accept(events(100, 20))
    await sink.close()
    expect(sink.dropped).toBeGreaterThan(0)
    expect(lines(path).length + sink.dropped).toBe(100)
  })

  test('an unwritable path fails at construction', () => {
    expect(() => new FileSink({ path: '/proc/warren-cannot/events.jsonl', maxBytes: 2048, maxFiles: 1, bufferBytes: 2048, log })).toThrow()
  })
})
