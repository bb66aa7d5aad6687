import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import * as tls from 'node:tls'
import { listCertificates, type CertRow } from '../../src/acme/list.ts'
import { formatCertTable } from '../../src/cli/certs.ts'
import { selfSigned } from './framework/certs.ts'
import { curl } from './framework/curl.ts'
import { makePebbleTls, pebbleOrders, pebbleUnavailable, served, startChallTestSrv, startPebble, type ChallTestSrv, type Pebble, type PebbleTls } from './framework/pebble.ts'
import { freePort } from './framework/ports.ts'
import { eventually, startEdge, WARREN_BIN, type Edge } from './framework/process.ts'
import { scratchDir } from './framework/scratch.ts'

// Automatic certificates through the compiled binary against Debian's pebble (a real ACME CA) and
// pebble-challtestsrv (fake DNS: every name is 127.0.0.1). Each edge gets its own pebble, whose
// HTTP-01/TLS-ALPN-01 validations go to that edge's plaintext and TLS ports.

const unavailable = pebbleUnavailable()
if (unavailable) console.warn(`test/e2e/acme.test.ts skipped: ${unavailable}`)

let pebbleTls: PebbleTls
let dns: ChallTestSrv
const running: { stop(): Promise<void> }[] = []

beforeAll(async () => {
  if (unavailable) return
  pebbleTls = makePebbleTls()
  dns = await startChallTestSrv()
})
afterEach(async () => {
  for (const r of running.splice(0).reverse()) await r.stop().catch(() => {})
})
afterAll(async () => {
  await dns?.stop()
  pebbleTls?.remove()
})

const respond = (url: string, body: string) =>
  `url: ${url}\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: "${body}"}}]\n`

interface AcmeEdge {
  edge: Edge
  pebble: Pebble | undefined
  httpPort: number
  httpsPort: number
  /** Pebble's current root written to a file, for curl --cacert. */
  rootFile(p?: Pebble): Promise<string>
}

/** Picks the edge's ports first so pebble can validate against them, then starts both. */
async function acmeEdge(options: {
  challenges: string
  policies?: Record<string, string>
  extra?: string
  validitySeconds?: number
  /** Start without a CA: the directory URL points at a port nothing listens on yet. */
  pebbleDown?: boolean
}): Promise<AcmeEdge & { pebblePort: number; pebbleMgmtPort: number }> {
  // The ports are picked free and released before pebble and the edge bind them, so another process
  // (an outgoing connection's source port) can take one meanwhile: then start again on new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await acmeEdgeOnce(options)
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE|address already in use/i.test(String(err))) throw err
    }
  }
}

async function acmeEdgeOnce(options: Parameters<typeof acmeEdge>[0]): Promise<AcmeEdge & { pebblePort: number; pebbleMgmtPort: number }> {
  const httpPort = await freePort()
  const httpsPort = await freePort()
  const pebblePort = await freePort()
  const pebbleMgmtPort = await freePort()
  const pebble = options.pebbleDown
    ? undefined
    : await startPebble({ tls: pebbleTls, httpPort, tlsPort: httpsPort, dnsPort: dns.dnsPort, port: pebblePort, managementPort: pebbleMgmtPort, ...(options.validitySeconds ? { validitySeconds: options.validitySeconds } : {}) })
  if (pebble) running.push(pebble)
  const config = [
    'domain: acme.test',
    'tls:',
    '  mode: acme',
    '  acme:',
    `    directory: https://127.0.0.1:${pebblePort}/dir`,
    `    trusted_roots: ${pebbleTls.caPath}`,
    '    email: ops@acme.test',
    `    challenges: [${options.challenges}]`,
    '    poll_interval: 0.05',
    '    retry_min: 0.3',
    '    retry_max: 2',
    '    on_demand_timeout: 5',
    ...(options.extra ? [options.extra] : []),
    '',
  ].join('\n')
  const edge = await startEdge({ config, policies: options.policies ?? {}, args: ['--http', `127.0.0.1:${httpPort}`, '--https', `127.0.0.1:${httpsPort}`] }).catch(async (err) => {
    if (pebble) {
      running.splice(running.indexOf(pebble), 1)
      await pebble.stop()
    }
    throw err
  })
  running.push(edge)
  const rootFile = async (p = pebble) => {
    const path = join(edge.dir, `pebble-root-${p!.port}-${Date.now()}.pem`)
    writeFileSync(path, await p!.root())
    return path
  }
  return { edge, pebble, httpPort, httpsPort, pebblePort, pebbleMgmtPort, rootFile }
}

/** Parsed JSON log lines of the edge that match `msg` (and `name`, when given). */
function logLines(edge: Edge, msg: RegExp, name?: string): Record<string, unknown>[] {
  return edge
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => msg.test(String(l.msg)) && (name === undefined || l.name === name))
}

const viaCurl = (a: AcmeEdge, name: string, ca: string, path = '/') =>
  curl(['--cacert', ca, '--resolve', `${name}:${a.httpsPort}:127.0.0.1`, `https://${name}:${a.httpsPort}${path}`])

describe.skipIf(!!unavailable)('ACME against pebble (compiled edge)', () => {
  test('HTTP-01: an https:// endpoint gets a certificate curl verifies against pebble root; files and certs list', async () => {
    const a = await acmeEdge({ challenges: 'http-01', policies: { 'web.yml': respond('https://web.acme.test', 'hello web') } })
    const line = await a.edge.waitForLog(/"certificate obtained".*"name":"web.acme.test"/, 15_000)
    expect(JSON.parse(line).ms).toBeLessThan(10_000) // issued in one pass (no retry wait); loose: the machine may be busy
    const root = await a.rootFile()
    const res = await viaCurl(a, 'web.acme.test', root)
    expect(res.exitCode).toBe(0)
    expect(res.body).toBe('hello web')
    const cert = await served(a.httpsPort, 'web.acme.test', root)
    expect(cert.authorized).toBe(true)
    expect(cert.san).toBe('DNS:web.acme.test')
    expect(cert.issuer).toMatch(/^Pebble Intermediate CA/)

    // certs/acme/: chain, key 0600, metadata with issuer and notAfter.
    const base = join(a.edge.dir, 'certs', 'acme', 'certificates', 'web.acme.test')
    expect(statSync(`${base}.key`).mode & 0o777).toBe(0o600)
    expect(readFileSync(`${base}.crt`, 'utf8')).toContain('BEGIN CERTIFICATE')
    const meta = JSON.parse(readFileSync(`${base}.json`, 'utf8'))
    expect(meta).toMatchObject({ name: 'web.acme.test', directory: a.pebble!.directory })
    expect(meta.issuer).toMatch(/Pebble Intermediate CA/)
    expect(Date.parse(meta.notAfter)).toBeGreaterThan(Date.now())
    expect(meta.lastError).toBeUndefined()
    const accountKey = readdirKeys(join(a.edge.dir, 'certs', 'acme', 'accounts'))
    expect(accountKey.length).toBe(1)
    expect(statSync(accountKey[0]!).mode & 0o777).toBe(0o600)

    // warren certs list: the same data from the files.
    const rows = await certsList(join(a.edge.dir, 'certs'))
    expect(rows.find((r) => r.name === 'web.acme.test')).toMatchObject({ source: 'acme', status: 'valid', notAfter: meta.notAfter })
    const text = await certsList(join(a.edge.dir, 'certs'), 'text')
    expect(text).toMatch(/^NAME\s+SOURCE\s+ISSUER\s+NOT AFTER\s+STATUS/)
    expect(text).toMatch(/web\.acme\.test\s+acme\s+Pebble Intermediate CA \w+\s+\S+\s+valid/)

    // The challenge path is only taken over while a validation runs.
    const probe = await curl(['-H', 'Host: web.acme.test', `http://127.0.0.1:${a.httpPort}/.well-known/acme-challenge/not-a-token`])
    expect(probe.status).toBe(308)
  })

  test('no order for names nothing claims; new endpoints (hot reload) and wildcard endpoints on demand do get one', async () => {
    const a = await acmeEdge({ challenges: 'http-01', policies: { 'apps.yml': respond('https://*.apps.acme.test', 'app ${req.host}') } })
    await a.edge.waitForLog(/"certificate obtained".*"name":"agent.acme.test"/, 5000)
    const before = pebbleOrders(a.pebble!)
    // A handshake for a name no endpoint, account or agent claims: refused, and no order placed.
    for (const name of ['nobody.acme.test', 'evil.example.org', 'a.b.apps.acme.test.evil.org']) {
      await expect(served(a.httpsPort, name, pebbleTls.caPath)).rejects.toThrow()
    }
    await Bun.sleep(300)
    expect(pebbleOrders(a.pebble!)).toBe(before)
    expect(logLines(a.edge, /ordering certificate/).map((l) => l.name)).not.toContain('nobody.acme.test')
    expect(existsSync(join(a.edge.dir, 'certs', 'acme', 'certificates', 'nobody.acme.test.json'))).toBe(false)
    // Without dns-01 the wildcard endpoint is not ordered as *.apps.acme.test ...
    expect(logLines(a.edge, /ordering certificate/).map((l) => l.name)).not.toContain('*.apps.acme.test')

    // ... but the first handshake for one of its names waits for an on-demand certificate.
    const root = await a.rootFile()
    const started = Date.now()
    const res = await viaCurl(a, 'x1.apps.acme.test', root)
    expect(res.exitCode).toBe(0)
    expect(res.body).toBe(`app x1.apps.acme.test:${a.httpsPort}`)
    expect(Date.now() - started).toBeLessThan(10_000) // in the first handshake, not after a retry
    expect(pebbleOrders(a.pebble!)).toBe(before + 1)

    // A new endpoint appears (hot reload): ordered in the background, before any handshake.
    a.edge.writePolicy('late.yml', respond('https://late.acme.test', 'late'))
    await a.edge.waitForLog(/"certificate obtained".*"name":"late.acme.test"/, 5000)
    expect((await viaCurl(a, 'late.acme.test', root)).body).toBe('late')
  })

  test('a tls:// endpoint that terminates at the edge gets its certificate on the first handshake; a passthrough one never orders', async () => {
    const plain = Bun.listen<undefined>({ hostname: '127.0.0.1', port: 0, socket: { data: (sock, d) => void sock.write(`plain:${d.toString()}`) } })
    const own = selfSigned(['pt.acme.test'])
    const backend = tls.createServer({ cert: own.cert, key: own.key }, (sock) => sock.on('data', (d) => sock.write(`backend:${d}`)))
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
    try {
      const a = await acmeEdge({
        challenges: 'tls-alpn-01',
        policies: {
          'term.yml': `url: tls://term.acme.test\ntraffic_policy:\n  on_tcp_connect:\n    - actions:\n        - type: terminate-tls\n        - type: forward-external\n          config: {url: "tcp://127.0.0.1:${plain.port}"}\n`,
          'pt.yml': `url: tls://pt.acme.test\ntraffic_policy:\n  on_tcp_connect:\n    - actions: [{type: forward-external, config: {url: "tls://127.0.0.1:${(backend.address() as { port: number }).port}"}}]\n`,
        },
      })
      await a.edge.waitForLog(/"certificate obtained".*"name":"agent.acme.test"/, 5000)
      const root = await a.rootFile()
      const term = await roundTrip(a.httpsPort, 'term.acme.test', { ca: root }, 'ping')
      expect(term).toEqual({ authorized: true, reply: 'plain:ping' })
      await a.edge.waitForLog(/"certificate obtained".*"name":"term.acme.test"/, 1000)
      // Passthrough: the backend's own certificate, and no order for the name.
      expect(await roundTrip(a.httpsPort, 'pt.acme.test', {}, 'ping')).toEqual({ authorized: false, reply: 'backend:ping' })
      await Bun.sleep(200)
      expect(logLines(a.edge, /ordering certificate/).map((l) => l.name).sort()).toEqual(['agent.acme.test', 'term.acme.test'])
    } finally {
      plain.stop(true)
      backend.close()
    }
  })

  test('TLS-ALPN-01 on the shared TLS port', async () => {
    const a = await acmeEdge({ challenges: 'tls-alpn-01', policies: { 'alpn.yml': respond('https://alpn.acme.test', 'hello alpn') } })
    const line = await a.edge.waitForLog(/"certificate obtained".*"name":"alpn.acme.test"/, 15_000)
    expect(JSON.parse(line).ms).toBeLessThan(10_000) // issued in one pass (no retry wait); loose: the machine may be busy
    const root = await a.rootFile()
    const res = await viaCurl(a, 'alpn.acme.test', root)
    expect(res.exitCode).toBe(0)
    expect(res.body).toBe('hello alpn')
  })

  test('DNS-01 through dns_hook: a wildcard certificate for a wildcard endpoint', async () => {
    const hookDir = scratchDir('warren-dns-hook-')
    const calls = join(hookDir, 'calls.log')
    const hook = join(hookDir, 'dns-hook.sh')
    writeFileSync(
      hook,
      [
        '#!/bin/sh',
        '# $1 = present|cleanup, $2 = record name, $3 = TXT value; talks to pebble-challtestsrv',
        `echo "$1 $2 $3" >> ${calls}`,
        'case "$1" in',
        `  present) exec curl -sf -X POST -d "{\\"host\\":\\"$2.\\",\\"value\\":\\"$3\\"}" ${dns.management}/set-txt ;;`,
        `  cleanup) exec curl -sf -X POST -d "{\\"host\\":\\"$2.\\"}" ${dns.management}/clear-txt ;;`,
        'esac',
        'exit 2',
        '',
      ].join('\n'),
    )
    chmodSync(hook, 0o755)
    const a = await acmeEdge({ challenges: 'dns-01', extra: `    dns_hook: ${hook}`, policies: { 'wild.yml': respond('https://*.wild.acme.test', 'wild ${req.host}') } })
    const line = await a.edge.waitForLog(/"certificate obtained".*"name":"\*.wild.acme.test"/, 15_000)
    // No fixed propagation wait after the hook (ACME clients often sleep 30-60 s); a loose bound, the machine may be busy.
    expect(JSON.parse(line).ms).toBeLessThan(10_000)
    const root = await a.rootFile()
    for (const name of ['a.wild.acme.test', 'b.wild.acme.test']) {
      const res = await viaCurl(a, name, root)
      expect(res.exitCode).toBe(0)
      expect(res.body).toBe(`wild ${name}:${a.httpsPort}`)
      expect((await served(a.httpsPort, name, root)).san).toBe('DNS:*.wild.acme.test')
    }
    // One wildcard order, no per-name orders.
    expect(logLines(a.edge, /ordering certificate/).map((l) => l.name).sort()).toEqual(['*.wild.acme.test', 'agent.acme.test'])
    const log = readFileSync(calls, 'utf8')
    expect(log).toMatch(/^present _acme-challenge\.wild\.acme\.test [A-Za-z0-9_-]{43}$/m)
    expect(log).toMatch(/^cleanup _acme-challenge\.wild\.acme\.test [A-Za-z0-9_-]{43}$/m)
  })

  test('renewal of a short-lived certificate; CA down: retries, clear log, the old certificate keeps serving; CA back: renewed', async () => {
    // 6 s certificates: renewal at ~4 s.
    const a = await acmeEdge({ challenges: 'http-01', validitySeconds: 6, policies: { 'short.yml': respond('https://short.acme.test', 'short') } })
    await a.edge.waitForLog(/"certificate obtained".*"name":"short.acme.test"/, 5000)
    const root = await a.rootFile()
    const first = await served(a.httpsPort, 'short.acme.test', root)
    await a.edge.waitForLog(/"certificate renewed".*"name":"short.acme.test"/, 8000)
    const second = await served(a.httpsPort, 'short.acme.test', root)
    expect(second.authorized).toBe(true)
    expect(second.serial).not.toBe(first.serial)

    // The CA goes away; the next renewal (due ~4 s after the last) fails and is retried with backoff.
    await a.pebble!.stop()
    const failure = JSON.parse(await a.edge.waitForLog(/Cannot obtain a certificate for \\"short.acme.test\\"/, 8000))
    expect(failure).toMatchObject({ level: 'error', code: 'ERR_WARREN_5001', name: 'short.acme.test', attempt: 1 })
    expect(failure.serving).toMatch(/^the previous certificate \(valid until /)
    expect(failure.msg).toMatch(new RegExp(`create the order: cannot reach https://127.0.0.1:${a.pebblePort}/\\S+: .*ECONNREFUSED`))
    // Still serving the renewed certificate (valid for a few more seconds).
    const during = await served(a.httpsPort, 'short.acme.test', root)
    expect(during.serial).toBe(second.serial)
    expect(during.authorized).toBe(true)
    await a.edge.waitForLog(/Cannot obtain a certificate for \\"short.acme.test\\".*"attempt":2/, 3000)
    const meta = JSON.parse(readFileSync(join(a.edge.dir, 'certs', 'acme', 'certificates', 'short.acme.test.json'), 'utf8'))
    expect(meta.lastError.failures).toBeGreaterThanOrEqual(2)

    // The CA comes back (same URL, new roots): the next retry renews.
    const again = await startPebble({ tls: pebbleTls, httpPort: a.httpPort, tlsPort: a.httpsPort, dnsPort: dns.dnsPort, port: a.pebblePort, managementPort: a.pebbleMgmtPort, validitySeconds: 60 })
    running.push(again)
    const renewals = logLines(a.edge, /certificate renewed/, 'short.acme.test').length
    expect(await eventually(async () => logLines(a.edge, /certificate renewed/, 'short.acme.test').length > renewals, 6000)).toBe(true)
    const after = await served(a.httpsPort, 'short.acme.test', await a.rootFile(again))
    expect(after.authorized).toBe(true)
    // The new CA instance does not know the account: registered again within the same attempt.
    expect(a.edge.logs()).toContain('the CA does not know the ACME account any more; registering again')
  }, 30_000)

  test('the ACME server is down at start: retried with backoff until it comes up', async () => {
    const a = await acmeEdge({ challenges: 'http-01', pebbleDown: true, policies: { 'late.yml': respond('https://down.acme.test', 'down') } })
    await a.edge.waitForLog(/Cannot obtain a certificate for \\"down.acme.test\\".*"attempt":2/, 5000)
    const failure = logLines(a.edge, /Cannot obtain a certificate/, 'down.acme.test')[0]!
    expect(failure).toMatchObject({ code: 'ERR_WARREN_5001', serving: 'nothing' })
    expect(Number(failure.retry_in_s)).toBeGreaterThan(0)
    const pebble = await startPebble({ tls: pebbleTls, httpPort: a.httpPort, tlsPort: a.httpsPort, dnsPort: dns.dnsPort, port: a.pebblePort, managementPort: a.pebbleMgmtPort })
    running.push(pebble)
    await a.edge.waitForLog(/"certificate obtained".*"name":"down.acme.test"/, 5000)
    const res = await viaCurl(a, 'down.acme.test', await a.rootFile(pebble))
    expect(res.body).toBe('down')
    const meta = JSON.parse(readFileSync(join(a.edge.dir, 'certs', 'acme', 'certificates', 'down.acme.test.json'), 'utf8'))
    expect(meta.lastError).toBeUndefined()
  })

  test('a failed validation is logged with the ACME problem document', async () => {
    // dns-01 with a hook that "succeeds" without setting the record: pebble finds no TXT record.
    const hookDir = scratchDir('warren-dns-hook-')
    const hook = join(hookDir, 'noop.sh')
    writeFileSync(hook, '#!/bin/sh\nexit 0\n')
    chmodSync(hook, 0o755)
    const a = await acmeEdge({ challenges: 'dns-01', extra: `    dns_hook: ${hook}`, policies: { 'p.yml': respond('https://problem.acme.test', 'x') } })
    const line = JSON.parse(await a.edge.waitForLog(/Cannot obtain a certificate for \\"problem.acme.test\\"/, 5000))
    expect(line.problem.type).toMatch(/^urn:ietf:params:acme:error:/)
    expect(line.problem_text).toContain(line.problem.type)
    expect(line.msg).toContain('dns-01 for "problem.acme.test": validation')
    const row = (await certsList(join(a.edge.dir, 'certs'))).find((r) => r.name === 'problem.acme.test')
    expect(row?.status).toBe('pending')
    expect(row?.lastError).toContain('urn:ietf:params:acme:error:')
  })
})

/**
 * `warren certs list` through the binary once the lead has added it to COMMANDS; until then the same
 * function in-process (so the data is tested either way).
 */
const cliHasCerts = Bun.spawnSync([WARREN_BIN, 'certs', '--help']).exitCode === 0
async function certsList(dir: string): Promise<CertRow[]>
async function certsList(dir: string, format: 'text'): Promise<string>
async function certsList(dir: string, format?: 'text'): Promise<CertRow[] | string> {
  if (cliHasCerts) {
    const r = Bun.spawnSync([WARREN_BIN, 'certs', 'list', '--certs', dir, ...(format ? [] : ['--json'])])
    if (r.exitCode !== 0) throw new Error(`warren certs list failed: ${r.stderr.toString()}`)
    return format ? r.stdout.toString() : (JSON.parse(r.stdout.toString()) as CertRow[])
  }
  const rows = await listCertificates(dir)
  return format ? formatCertTable(rows) : (JSON.parse(JSON.stringify(rows)) as CertRow[])
}

/** One TLS round trip: connect with `servername`, send `text`, read the first reply. */
function roundTrip(port: number, servername: string, options: { ca?: string }, text: string): Promise<{ authorized: boolean; reply: string }> {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, ...(options.ca ? { ca: readFileSync(options.ca) } : {}) }, () => sock.write(text))
    sock.once('data', (d) => {
      resolve({ authorized: sock.authorized, reply: d.toString() })
      sock.destroy()
    })
    sock.on('error', reject)
  })
}

function readdirKeys(dir: string): string[] {
  return Bun.spawnSync(['sh', '-c', `ls ${dir}/*.key`]).stdout.toString().trim().split('\n').filter(Boolean)
}
