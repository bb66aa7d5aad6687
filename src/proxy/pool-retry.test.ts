import { describe, expect, test } from 'bun:test'
import { CODES, WarrenError } from '../lib/errors.ts'
import { UpstreamRefused } from './h1/index.ts'
import { attemptFailure, MAX_REPLAY_BODY, mayRetry, PoolRetryStats, readReplayBody, replayStream, type AttemptFailure } from './pool-retry.ts'

describe('attemptFailure()', () => {
  test.each([
    { desc: 'no stream could be opened (session gone)', err: new UpstreamRefused(new Error('offline'), { requestSent: false }), want: { unsent: true, reason: 'no stream' } },
    { desc: 'the agent refused the stream after bytes went out', err: new UpstreamRefused(undefined, { requestSent: true, closeReason: 'refused' }), want: { unsent: true, reason: 'stream refused' } },
    { desc: 'the session closed before a byte went out', err: new UpstreamRefused(undefined, { requestSent: false, closeReason: 'session closed' }), want: { unsent: true, reason: 'session closed' } },
    { desc: 'the session closed after the request went out', err: new UpstreamRefused(undefined, { requestSent: true, closeReason: 'session closed' }), want: { unsent: false, reason: 'session closed' } },
    { desc: 'the stream was reset after the request went out', err: new UpstreamRefused(undefined, { requestSent: true, closeReason: 'reset' }), want: { unsent: false, reason: 'stream reset' } },
    { desc: 'the stream closed after the request went out', err: new UpstreamRefused(undefined, { requestSent: true }), want: { unsent: false, reason: 'stream closed' } },
  ])('$desc', ({ err, want }) => {
    expect(attemptFailure(err)).toEqual(want as AttemptFailure)
  })

  test.each([
    { desc: 'a timeout', err: new WarrenError(CODES.UPSTREAM_TIMEOUT, 'late', { status: 504 }) },
    { desc: 'an answer that had begun', err: new WarrenError(CODES.UPSTREAM_INVALID_RESPONSE, 'partial', { status: 502 }) },
    { desc: "the client's body failing", err: new WarrenError(CODES.BAD_REQUEST, 'body', { status: 400 }) },
    { desc: 'anything else', err: new Error('boom') },
  ])('is undefined for $desc (never retried)', ({ err }) => {
    expect(attemptFailure(err)).toBeUndefined()
  })
})

describe('mayRetry()', () => {
  const unsent: AttemptFailure = { unsent: true, reason: 'no stream' }
  const sent: AttemptFailure = { unsent: false, reason: 'stream closed' }
  test.each([
    { method: 'GET', failure: sent, want: true },
    { method: 'HEAD', failure: sent, want: true },
    { method: 'OPTIONS', failure: sent, want: true },
    { method: 'PUT', failure: sent, want: true },
    { method: 'DELETE', failure: sent, want: true },
    { method: 'TRACE', failure: sent, want: true },
    { method: 'POST', failure: sent, want: false },
    { method: 'PATCH', failure: sent, want: false },
    { method: 'POST', failure: unsent, want: true },
    { method: 'PATCH', failure: unsent, want: true },
  ])('$method after a failure with unsent=$failure.unsent: $want', ({ method, failure, want }) => {
    expect(mayRetry(method, failure)).toBe(want)
  })
})

describe('readReplayBody()', () => {
  // As a server receives it: a sized body comes with its Content-Length.
  const post = (body: Uint8Array) => new Request('http://x/', { method: 'POST', body, headers: { 'content-length': String(body.length) } })

  test('no body: replayable as null', async () => {
    expect(await readReplayBody(new Request('http://x/'))).toEqual({ bytes: null })
  })

  test('a body within the bound is read whole and replays byte for byte, twice', async () => {
    const bytes = new Uint8Array(MAX_REPLAY_BODY).map((_, i) => i % 251)
    const replay = (await readReplayBody(post(bytes)))!
    expect(replay.bytes?.length).toBe(MAX_REPLAY_BODY)
    for (let i = 0; i < 2; i++) expect(new Uint8Array(await new Response(replayStream(replay)).arrayBuffer())).toEqual(bytes)
  })

  test('a body over the bound streams (not replayable) and is left unread', async () => {
    const req = post(new Uint8Array(MAX_REPLAY_BODY + 1))
    expect(await readReplayBody(req)).toBeUndefined()
    expect(req.bodyUsed).toBe(false)
  })

  test('a body without Content-Length (chunked, streaming) is not replayable', async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new Uint8Array(10))
        c.close()
      },
    })
    const req = new Request('http://x/', { method: 'POST', body: stream, duplex: 'half' } as RequestInit)
    expect(req.headers.get('content-length')).toBeNull()
    expect(await readReplayBody(req)).toBeUndefined()
  })
})

test('PoolRetryStats counts per endpoint and reason', () => {
  const stats = new PoolRetryStats()
  stats.count('https://a', 'no stream')
  stats.count('https://a', 'no stream')
  stats.count('https://a', 'stream reset')
  expect(stats.entries()).toEqual([
    { endpoint: 'https://a', reason: 'no stream', count: 2 },
    { endpoint: 'https://a', reason: 'stream reset', count: 1 },
  ])
})
