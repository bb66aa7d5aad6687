import { describe, expect, test } from 'bun:test'
import { makeEvent } from './types.ts'

describe('makeEvent', () => {
  test('id and timestamp are made when read, and serialize like plain fields', () => {
    const at = Date.UTC(2026, 11, 7, 12, 0, 0, 123)
    const a = makeEvent('config_reload.v0', { reason: 'watch', version: 1, ok: true, endpoints: 0, changed: [], errors: [] }, at)
    const b = makeEvent('config_reload.v0', { reason: 'watch', version: 2, ok: true, endpoints: 0, changed: [], errors: [] }, new Date(at))
    const json = JSON.parse(JSON.stringify(a))
    expect(Object.keys(json)).toEqual(['event_id', 'event_type', 'event_timestamp', 'object'])
    expect(json.event_timestamp).toBe('2026-12-07T12:00:00.123Z')
    expect(b.event_timestamp).toBe('2026-12-07T12:00:00.123Z')
    expect(json.event_id).toBe(a.event_id)
    // Ids are ordered by emission even when read later.
    expect(b.event_id > a.event_id).toBe(true)
    expect({ ...a }.object.version).toBe(1)
  })
})
