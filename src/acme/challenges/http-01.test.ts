import { afterEach, describe, expect, test } from 'bun:test'
import { EndpointStore } from '../../endpoints/store.ts'
import { listenHttp, type HttpServer } from '../../listeners/http.ts'
import { Http01Responder } from './http-01.ts'

const authz = (name: string) => ({ identifier: { value: name } })

describe('Http01Responder', () => {
  test('answers only the pending token of a name being validated, until cleanup', async () => {
    const r = new Http01Responder()
    expect(r.respond('a.test', 'tok')).toBeUndefined()
    await r.present(authz('A.test'), { token: 'tok' }, 'tok.thumb')
    await r.present(authz('a.test'), { token: 'tok2' }, 'tok2.thumb')
    expect(r.respond('a.test', 'tok')).toBe('tok.thumb')
    expect(r.respond('a.test', 'tok2')).toBe('tok2.thumb')
    expect(r.respond('b.test', 'tok')).toBeUndefined()
    expect(r.respond('a.test', 'other')).toBeUndefined()
    await r.cleanup(authz('a.test'), { token: 'tok' })
    expect(r.respond('a.test', 'tok')).toBeUndefined()
    expect(r.pending).toBe(1)
    await r.cleanup(authz('a.test'), { token: 'tok2' })
    expect(r.pending).toBe(0)
  })
})

describe('the plaintext listener with acmeChallenge', () => {
  let server: HttpServer | undefined
  afterEach(() => void server?.stop(true))

  test('serves /.well-known/acme-challenge/<token> during validation; everything else goes to the endpoints', async () => {
    const r = new Http01Responder()
    server = listenHttp({
      store: new EndpointStore(),
      scheme: 'http',
      hostname: '127.0.0.1',
      port: 0,
      defaultPort: 80,
      idleTimeoutSec: 10,
      maxBodyBytes: 1024,
      maxHeaderBytes: 16384,
      upstreamTimeoutMs: 1000,
      logRequests: false,
      acmeChallenge: (host, token) => r.respond(host, token),
    })
    const get = (host: string, path: string, method = 'GET') =>
      fetch(`http://127.0.0.1:${server!.port}${path}`, { method, headers: { host } })
    await r.present(authz('web.example.com'), { token: 'abc_123-XYZ' }, 'abc_123-XYZ.key-thumbprint')

    const ok = await get('Web.Example.com:80', '/.well-known/acme-challenge/abc_123-XYZ')
    expect(ok.status).toBe(200)
    expect(ok.headers.get('content-type')).toStartWith('text/plain')
    expect(await ok.text()).toBe('abc_123-XYZ.key-thumbprint')

    // Another token, another name, another method, a longer path: the endpoints' answer (no endpoint → 404).
    for (const [host, path, method] of [
      ['web.example.com', '/.well-known/acme-challenge/nope', 'GET'],
      ['other.example.com', '/.well-known/acme-challenge/abc_123-XYZ', 'GET'],
      ['web.example.com', '/.well-known/acme-challenge/abc_123-XYZ', 'POST'],
      ['web.example.com', '/.well-known/acme-challenge/abc_123-XYZ/x', 'GET'],
    ] as const) {
      const res = await get(host, path, method)
      expect(res.status).toBe(404)
      expect(res.headers.get('warren-error-code')).toBe('ERR_WARREN_3200')
    }

    await r.cleanup(authz('web.example.com'), { token: 'abc_123-XYZ' })
    expect((await get('web.example.com', '/.well-known/acme-challenge/abc_123-XYZ')).status).toBe(404)
  })
})
