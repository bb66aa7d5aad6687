import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileServer, parseRange } from './file-server.ts'

describe('parseRange()', () => {
  test.each([
    { desc: 'no header', header: null, size: 100, want: { kind: 'none' } },
    { desc: 'first bytes', header: 'bytes=0-9', size: 100, want: { kind: 'partial', start: 0, end: 9 } },
    { desc: 'open end', header: 'bytes=90-', size: 100, want: { kind: 'partial', start: 90, end: 99 } },
    { desc: 'suffix', header: 'bytes=-10', size: 100, want: { kind: 'partial', start: 90, end: 99 } },
    { desc: 'suffix longer than the file', header: 'bytes=-500', size: 100, want: { kind: 'partial', start: 0, end: 99 } },
    { desc: 'end past the file is clamped', header: 'bytes=50-1000', size: 100, want: { kind: 'partial', start: 50, end: 99 } },
    { desc: 'spaces and case', header: ' Bytes = 1-2', size: 100, want: { kind: 'partial', start: 1, end: 2 } },
    { desc: 'start past the end', header: 'bytes=100-', size: 100, want: { kind: 'unsatisfiable' } },
    { desc: 'end before start', header: 'bytes=9-3', size: 100, want: { kind: 'unsatisfiable' } },
    { desc: 'zero suffix', header: 'bytes=-0', size: 100, want: { kind: 'unsatisfiable' } },
    { desc: 'empty file', header: 'bytes=0-', size: 0, want: { kind: 'unsatisfiable' } },
    { desc: 'several ranges: whole file', header: 'bytes=0-1,5-6', size: 100, want: { kind: 'none' } },
    { desc: 'other unit: whole file', header: 'items=0-1', size: 100, want: { kind: 'none' } },
    { desc: 'garbage: whole file', header: 'bytes=a-b', size: 100, want: { kind: 'none' } },
    { desc: 'just a dash: whole file', header: 'bytes=-', size: 100, want: { kind: 'none' } },
  ])('$desc: $header', ({ header, size, want }) => {
    expect(parseRange(header, size)).toEqual(want as ReturnType<typeof parseRange>)
  })
})

describe('fileServer()', () => {
  let root: string
  let outside: string
  let serve: (req: Request) => Promise<Response>
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => serve(new Request(`http://files.test${path}`, { method, headers }))

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'warren-files-'))
    outside = mkdtempSync(join(tmpdir(), 'warren-outside-'))
    writeFileSync(join(outside, 'secret.txt'), 'secret')
    writeFileSync(join(root, 'hello.txt'), 'hello, world\n')
    writeFileSync(join(root, 'data.json'), '{"a":1}')
    writeFileSync(join(root, 'page.html'), '<p>x</p>')
    writeFileSync(join(root, 'style.css'), 'p{}')
    writeFileSync(join(root, 'blob.bin'), new Uint8Array(1000).map((_, i) => i % 256))
    writeFileSync(join(root, 'a & <b>.txt'), 'odd name')
    mkdirSync(join(root, 'sub'))
    writeFileSync(join(root, 'sub', 'nested.txt'), 'nested')
    mkdirSync(join(root, 'site'))
    writeFileSync(join(root, 'site', 'index.html'), '<h1>index</h1>')
    symlinkSync(outside, join(root, 'escape'))
    writeFileSync(join(root, '.env'), 'SECRET=1')
    mkdirSync(join(root, '.git'))
    writeFileSync(join(root, '.git', 'config'), '[remote]')
    mkdirSync(join(root, 'sub', '.hidden'))
    writeFileSync(join(root, 'sub', '.hidden', 'index.html'), 'hidden index')
    symlinkSync(join(root, '.git'), join(root, 'gitlink'))
    mkdirSync(join(root, '.well-known'))
    writeFileSync(join(root, '.well-known', 'security.txt'), 'Contact: mailto:sec@example.com')
    writeFileSync(join(root, '.well-known', '.env'), 'SECRET=2')
    serve = fileServer(root)
  })
  afterAll(() => {
    rmSync(root, { recursive: true, force: true })
    rmSync(outside, { recursive: true, force: true })
  })

  test.each([
    { path: '/hello.txt', type: 'text/plain' },
    { path: '/data.json', type: 'application/json' },
    { path: '/page.html', type: 'text/html' },
    { path: '/style.css', type: 'text/css' },
    { path: '/blob.bin', type: 'application/octet-stream' },
  ])('serves $path as $type', async ({ path, type }) => {
    const res = await get(path)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toStartWith(type)
    expect(res.headers.get('accept-ranges')).toBe('bytes')
  })

  test('a byte range answers 206 with Content-Range and exactly those bytes', async () => {
    const res = await get('/blob.bin', { range: 'bytes=10-19' })
    expect(res.status).toBe(206)
    expect(res.headers.get('content-range')).toBe('bytes 10-19/1000')
    expect(res.headers.get('content-length')).toBe('10')
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
  })

  test('a suffix range returns the tail', async () => {
    const res = await get('/hello.txt', { range: 'bytes=-6' })
    expect(res.status).toBe(206)
    expect(await res.text()).toBe('world\n')
  })

  test('an unsatisfiable range answers 416 with the size', async () => {
    const res = await get('/hello.txt', { range: 'bytes=500-' })
    expect(res.status).toBe(416)
    expect(res.headers.get('content-range')).toBe('bytes */13')
  })

  test('If-Range with a stale validator ignores the range', async () => {
    const res = await get('/hello.txt', { range: 'bytes=0-4', 'if-range': 'W/"stale"' })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('hello, world\n')
  })

  test('If-Range with the current ETag keeps the range', async () => {
    const etag = (await get('/hello.txt')).headers.get('etag')!
    const res = await get('/hello.txt', { range: 'bytes=0-4', 'if-range': etag })
    expect(res.status).toBe(206)
    expect(await res.text()).toBe('hello')
  })

  test('If-None-Match with the ETag answers 304', async () => {
    const etag = (await get('/hello.txt')).headers.get('etag')!
    expect((await get('/hello.txt', { 'if-none-match': etag })).status).toBe(304)
  })

  test('If-Modified-Since in the future answers 304', async () => {
    expect((await get('/hello.txt', { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() })).status).toBe(304)
  })

  test('HEAD has the headers and no body', async () => {
    const res = await get('/hello.txt', {}, 'HEAD')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-length')).toBe('13')
    expect(res.body).toBeNull()
  })

  test('a directory lists its entries, directories first, names escaped', async () => {
    const res = await get('/')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toStartWith('text/html')
    const html = await res.text()
    expect(html).toContain('<a href="sub/">sub/</a>')
    expect(html).toContain('<a href="hello.txt">hello.txt</a>')
    expect(html).toContain('a &#38; &#60;b&#62;.txt')
    expect(html).toContain('href="a%20%26%20%3Cb%3E.txt"')
    expect(html.indexOf('sub/')).toBeLessThan(html.indexOf('hello.txt'))
  })

  test('a directory without a trailing slash redirects', async () => {
    const res = await get('/sub')
    expect(res.status).toBe(301)
    expect(res.headers.get('location')).toBe('/sub/')
  })

  test('a directory with index.html serves it', async () => {
    expect(await (await get('/site/')).text()).toBe('<h1>index</h1>')
  })

  test('percent-encoded names are found', async () => {
    expect(await (await get('/a%20%26%20%3Cb%3E.txt')).text()).toBe('odd name')
  })

  test.each(['/../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/sub/..%2f..%2fetc/passwd', '/nope.txt', '/hello.txt%00.png', '/escape/secret.txt'])('nothing outside the root or missing: %s → 404', async (path) => {
    expect((await get(path)).status).toBe(404)
  })

  test.each(['/.env', '/.git/config', '/.git/', '/%2eenv', '/sub/.hidden/', '/sub/.hidden/index.html', '/gitlink/config', '/.well-known/../.env', '/.well-known/.env'])(
    'dotfiles are hidden unless asked: %s → 404',
    async (path) => {
      expect((await get(path)).status).toBe(404)
      expect((await fileServer(root, { dotfiles: true })(new Request(`http://files.test${path}`))).status).not.toBe(404)
    },
  )

  test('listings leave dotfiles out unless asked; .well-known is public', async () => {
    const html = await (await get('/')).text()
    expect(html).not.toContain('.env')
    expect(html).not.toContain('.git')
    expect(html).toContain('href=".well-known/"')
    expect(await (await get('/.well-known/security.txt')).text()).toBe('Contact: mailto:sec@example.com')
    const all = await (await fileServer(root, { dotfiles: true })(new Request('http://files.test/'))).text()
    expect(all).toContain('href=".env"')
    expect(all).toContain('href=".git/"')
  })

  test('other methods answer 405', async () => {
    const res = await get('/hello.txt', {}, 'POST')
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('GET, HEAD')
  })
})
