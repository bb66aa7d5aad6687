import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { parse, stringify } from 'yaml'
import { curl } from './framework/curl.ts'
import { makePebbleTls, pebbleUnavailable, startChallTestSrv, startPebble, type ChallTestSrv, type Pebble, type PebbleTls } from './framework/pebble.ts'
import { freePort } from './framework/ports.ts'
import { startEdge, type Edge } from './framework/process.ts'

// docs/quickstart.md, checked where it can be on one machine: its warren.yaml and policies file, as
// written, run on loopback with pebble standing in for Let's Encrypt (pebble-challtestsrv answers DNS
// for every name with 127.0.0.1). Only the listen addresses, the CA's directory and trust are changed.
// Not checkable here: public DNS and the agent dialing agent.tunnel.example.com by name.
const unavailable = pebbleUnavailable()
if (unavailable) console.warn(`test/e2e/quickstart.test.ts skipped: ${unavailable}`)

const doc = readFileSync(join(import.meta.dir, '..', '..', 'docs', 'quickstart.md'), 'utf8')
const blocks = [...doc.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, text: m[2]! }))
// Step 3's placeholders filled in as its commands say: the SHA-256 of the token and of the key.
const sha = (s: string) => new Bun.CryptoHasher('sha256').update(s).digest('hex')
const serverYaml = blocks
  .find((b) => b.lang === 'yaml' && b.text.includes('mode: acme'))!
  .text.replace('REPLACE_WITH_THE_TOKEN_HEX', sha('my-agent-token'))
  .replace('REPLACE_WITH_THE_KEY_HEX', sha('my-api-key'))
const helloPolicy = /cat > policies\/hello\.yml <<'YAML'\n([\s\S]*?)YAML\n/.exec(doc)![1]!

let pebbleTls: PebbleTls
let dns: ChallTestSrv
let pebble: Pebble
let edge: Edge
let root: string
let httpsPort: number
let agentPort: number

beforeAll(async () => {
  if (unavailable) return
  pebbleTls = makePebbleTls()
  dns = await startChallTestSrv()
  const httpPort = await freePort()
  httpsPort = await freePort()
  agentPort = await freePort()
  const pebblePort = await freePort()
  pebble = await startPebble({ tls: pebbleTls, httpPort, tlsPort: httpsPort, dnsPort: dns.dnsPort, port: pebblePort, managementPort: await freePort() })
  const config = parse(serverYaml) as { tls: { acme: Record<string, unknown> } }
  Object.assign(config.tls.acme, { directory: `https://127.0.0.1:${pebblePort}/dir`, trusted_roots: pebbleTls.caPath, poll_interval: 0.05 })
  edge = await startEdge({
    config: stringify(config),
    policies: { 'hello.yml': helloPolicy },
    args: ['--http', `127.0.0.1:${httpPort}`, '--https', `127.0.0.1:${httpsPort}`, '--agent', `127.0.0.1:${agentPort}`],
  })
  root = join(edge.dir, 'pebble-root.pem')
  writeFileSync(root, await pebble.root())
})
afterAll(async () => {
  await edge?.stop()
  await pebble?.stop()
  await dns?.stop()
  pebbleTls?.remove()
})

/** The certificate served for `name` on `port`, verified against pebble's root. */
function verified(port: number, name: string): Promise<{ authorized: boolean; san: string }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername: name, ca: readFileSync(root), rejectUnauthorized: false }, () => {
      resolve({ authorized: sock.authorized, san: sock.getPeerCertificate().subjectaltname ?? '' })
      sock.destroy()
    })
    sock.on('error', reject)
  })
}

describe.skipIf(!!unavailable)('docs/quickstart.md on loopback, pebble as the CA', () => {
  test('step 4: the agent port gets its certificate for agent.tunnel.example.com and opens', async () => {
    await edge.waitForLog(/agent port listening/, 30_000)
    const cert = await verified(agentPort, 'agent.tunnel.example.com')
    expect(cert.authorized).toBe(true)
    expect(cert.san).toContain('DNS:agent.tunnel.example.com')
  })

  test('step 4: the policies file answers over HTTPS with a certificate from the CA', async () => {
    await edge.waitForLog(/certificate obtained.*hello\.tunnel\.example\.com/, 30_000)
    const res = await curl(['--cacert', root, '--resolve', `hello.tunnel.example.com:${httpsPort}:127.0.0.1`, `https://hello.tunnel.example.com:${httpsPort}/`])
    expect(res.status).toBe(200)
    expect(res.body).toBe('hello from warren')
  })
})
