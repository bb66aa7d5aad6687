import { expect, test } from 'bun:test'
import { readyBody, readyResponse } from './ready-body.ts'

test('a ready response gives its bytes until its body is read, and reads the same bytes as a stream', async () => {
  const bytes = new TextEncoder().encode('hello')
  const res = readyResponse(bytes, { status: 201, headers: { 'x-a': '1' } })
  expect(readyBody(res)).toBe(bytes)
  // The Response did not take the buffer over (a detached view would read as empty).
  expect(new TextDecoder().decode(readyBody(res))).toBe('hello')
  expect(res.status).toBe(201)
  expect(await res.text()).toBe('hello')
  // Read once: the bytes are not handed out a second time.
  expect(readyBody(res)).toBeUndefined()
  expect(readyBody(new Response(bytes))).toBeUndefined()
})
