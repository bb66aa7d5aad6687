import { afterEach, describe, expect, test } from 'bun:test'
import type { TCPSocketListener } from 'bun'
import * as acme from 'acme-client'
import { recordingLogger } from '../../certs/testing.ts'
import { peekClientHello } from '../../listeners/sni.ts'
import { clientRelayHandlers, newRelayConn, relayClientData, type RelayConn } from '../../proxy/tcp-relay.ts'
import { TlsAlpn01Responder } from './tls-alpn-01.ts'

type FrontConn = RelayConn & { peeked: boolean }

/** A stand-in for TlsFront: peek at the ClientHello, hand acme-tls/1 connections to the responder. */
function front(responder: TlsAlpn01Responder): TCPSocketListener<FrontConn> {
  return Bun.listen<FrontConn>({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      ...clientRelayHandlers,
      open(socket) {
        socket.data = { ...newRelayConn(), peeked: false }
      },
      data(socket, chunk) {
        if (socket.data.peeked) return relayClientData(socket, chunk)
        const hello = peekClientHello(chunk)
        if (hello.kind !== 'hello') return void socket.end()
        socket.data.peeked = true
        socket.pause()
        responder.handle(socket, chunk.slice(), hello.serverName ?? '')
      },
      error: () => {},
    },
  })
}

/**
 * A handshake offering only acme-tls/1, by openssl s_client: BoringSSL (node:tls under Bun) refuses
 * acme-client's challenge certificate over its key usage bits, which real validators (Go) ignore.
 */
async function handshake(port: number, servername: string): Promise<{ alpn: string | undefined; cert: string | undefined }> {
  const proc = Bun.spawn(['openssl', 's_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-alpn', 'acme-tls/1'], { stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  const timer = setTimeout(() => proc.kill(), 5000)
  const out = (await new Response(proc.stdout).text()) + (await new Response(proc.stderr).text())
  await proc.exited
  clearTimeout(timer)
  return { alpn: /ALPN protocol: (\S+)/.exec(out)?.[1], cert: /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out)?.[0] }
}

describe.skipIf(Bun.which('openssl') === null)('TlsAlpn01Responder through a peeking front', () => {
  const cleanup: (() => void)[] = []
  afterEach(() => {
    for (const c of cleanup.splice(0)) c()
  })

  test('presents the challenge certificate with acme-tls/1 for the name being validated, nothing otherwise', async () => {
    const responder = new TlsAlpn01Responder(recordingLogger())
    const listener = front(responder)
    cleanup.push(() => listener.stop(true), () => responder.stop())
    const authz = { identifier: { type: 'dns', value: 'alpn.example.com' } } as acme.Authorization
    const keyAuthorization = 'token.thumbprint'

    // Nothing pending yet: closed.
    expect(await handshake(listener.port, 'alpn.example.com')).toEqual({ alpn: undefined, cert: undefined })

    await responder.present(authz, { type: 'tls-alpn-01', token: 'token' }, keyAuthorization)
    expect(responder.has('ALPN.example.com')).toBe(true)
    const got = await handshake(listener.port, 'alpn.example.com')
    expect(got.alpn).toBe('acme-tls/1')
    expect(acme.crypto.isAlpnCertificateAuthorizationValid(got.cert!, keyAuthorization)).toBe(true)
    expect(acme.crypto.isAlpnCertificateAuthorizationValid(got.cert!, 'other.thumbprint')).toBe(false)

    // Another name on the same port gets nothing.
    expect((await handshake(listener.port, 'other.example.com')).cert).toBeUndefined()

    await responder.cleanup(authz)
    expect(responder.has('alpn.example.com')).toBe(false)
    expect((await handshake(listener.port, 'alpn.example.com')).cert).toBeUndefined()
  })
})
