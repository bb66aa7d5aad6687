import { afterAll, afterEach, describe, expect, spyOn, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { configureLogging } from '../lib/log.ts'
import { policyCommand } from './policy.ts'

const FIXTURES = join(import.meta.dir, '../../test/fixtures/policies')

async function run(args: string[]): Promise<{ code: number; out: string }> {
  let out = ''
  const spy = spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true))
  try {
    return { code: await policyCommand(args), out }
  } finally {
    spy.mockRestore()
  }
}

let dir: string | undefined
afterEach(() => dir && rmSync(dir, { recursive: true, force: true }))
// The commands quiet the process logger (their output reports failures); later test files expect the default.
afterAll(() => configureLogging({ level: 'info' }))

describe('warren policy test / explain', () => {
  test('test: every fixture in test/fixtures/policies passes', async () => {
    const r = await run(['test', FIXTURES])
    expect(r.out).toMatch(/^\d+ passed, 0 failed$/m)
    expect(r.code).toBe(0)
  })

  test('test: a failing case exits 1 and says why', async () => {
    dir = mkdtempSync(join(tmpdir(), 'warren-cli-'))
    const file = join(dir, 'x.policytest.yaml')
    writeFileSync(file, 'policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {status_code: 204}}]\ncases:\n  - name: wrong\n    expect: {status: 200}\n')
    const r = await run(['test', '--quiet', file])
    expect(r.code).toBe(1)
    expect(r.out).toContain(`FAIL  ${file}:5  wrong\n        status: expected 200, got 204\n`)
    expect(r.out).toEndWith('0 passed, 1 failed\n')
  })

  test('explain: prints the rules and the result', async () => {
    const r = await run(['explain', join(FIXTURES, 'expressions.policytest.yaml'), '--request', 'GET /api/x', '-H', 'X-Api-Key: k'])
    expect(r.code).toBe(0)
    expect(r.out).toContain('  rule 2 "API key required": skipped')
    expect(r.out).toContain("      hasReqHeader('X-Api-Key') = true")
    expect(r.out).toContain('result: forwarded to http://127.0.0.1:3000 (http://127.0.0.1:3000/api/x); the client gets 200')
  })

  test('usage errors exit 2', async () => {
    expect((await run(['test'])).code).toBe(2)
    expect((await run(['explain'])).code).toBe(2)
    expect((await run(['nope'])).code).toBe(2)
  })
})
