import * as v from 'valibot'
import { defineAction } from '../types.ts'

/**
 * Drops the client connection without sending anything (HTTP clients see a reset). For traffic not
 * worth an answer; `deny` or `custom-response` answer with a status instead.
 */
export const closeConnection = defineAction({
  type: 'close-connection',
  phases: ['on_tcp_connect', 'on_http_request'],
  terminating: true,
  config: v.strictObject({}),
  build() {
    return function closeConnection() {
      return { kind: 'close' }
    }
  },
})
