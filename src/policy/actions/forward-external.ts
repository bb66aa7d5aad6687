import * as v from 'valibot'
import { defineAction } from '../types.ts'

const HTTP_URL = /^https?:\/\/[^/?#\s]+\/?$/i

/**
 * warren's own terminating action: the edge as a plain reverse proxy to `url`
 * (`http(s)://host:port`). The client's Host goes upstream unchanged unless `add-headers` sets `host`;
 * X-Forwarded-For/Proto/Host are added.
 */
export const forwardExternal = defineAction({
  type: 'forward-external',
  phases: ['on_http_request'],
  terminating: true,
  config: v.strictObject({
    /** Upstream origin, e.g. `http://127.0.0.1:3000` (no path). */
    url: v.pipe(v.string(), v.regex(HTTP_URL, 'must be an http:// or https:// origin such as http://127.0.0.1:3000')),
  }),
  build(config) {
    const target = { kind: 'external', url: new URL(config.url) } as const
    return function forwardExternal() {
      return { kind: 'forward', target }
    }
  },
})
