import { describe, expect, test } from 'bun:test'
import { CODES } from '../lib/errors.ts'
import { errorResponse, sized } from './errors.ts'

describe('edge-made answers say their length', () => {
  test.each<{ desc: string; body: string; status: number; want: string | null }>([
    { desc: 'text: its UTF-8 byte count', body: 'héllo', status: 200, want: '6' },
    { desc: 'empty: 0', body: '', status: 403, want: '0' },
    { desc: 'empty 204: none (RFC 9110 §8.6)', body: '', status: 204, want: null },
    { desc: 'empty 304: none', body: '', status: 304, want: null },
  ])('sized() $desc', async ({ body, status, want }) => {
    const res = sized(body, status, new Headers())
    expect(res.headers.get('content-length')).toBe(want)
    expect(res.body === null).toBe(body === '')
    if (body) expect(Buffer.byteLength(await res.text())).toBe(Number(want))
  })

  test('errorResponse() pages carry the byte count of the page', async () => {
    for (const accept of ['text/html', null]) {
      const res = errorResponse(502, CODES.INTERNAL, 'Upstream <down>', accept)
      expect(res.headers.get('content-length')).toBe(String((await res.arrayBuffer()).byteLength))
    }
  })
})
