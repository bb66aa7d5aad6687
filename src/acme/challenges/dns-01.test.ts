import { describe, expect, test } from 'bun:test'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../../certs/testing.ts'
import { Dns01Hook, dnsRecordName } from './dns-01.ts'

test.each([
  { domain: 'example.com', want: '_acme-challenge.example.com' },
  { domain: '*.Apps.Example.com', want: '_acme-challenge.apps.example.com' },
  { domain: 'example.com.', want: '_acme-challenge.example.com' },
])('dnsRecordName($domain)', ({ domain, want }) => {
  expect(dnsRecordName(domain)).toBe(want)
})

describe('Dns01Hook', () => {
  test('runs `<hook> present|cleanup <record> <value>` with the values as separate arguments, in the config directory', async () => {
    using dir = tempDir()
    writeFileSync(join(dir.path, 'hook.sh'), '#!/bin/sh\nprintf "%s|%s|%s|%s|%s\\n" "$1" "$2" "$3" "$4" "$(pwd)" >> calls.log\n')
    chmodSync(join(dir.path, 'hook.sh'), 0o755)
    const hook = new Dns01Hook('./hook.sh --zone "my zone"', { cwd: dir.path })
    const authz = { identifier: { value: 'apps.example.com' } }
    // A value with shell metacharacters must arrive untouched (never interpolated).
    await hook.present(authz, {}, 'abc$(touch pwned);`x`')
    await hook.cleanup(authz, {}, 'abc$(touch pwned);`x`')
    const calls = readFileSync(join(dir.path, 'calls.log'), 'utf8').trim().split('\n')
    expect(calls).toEqual([
      `--zone|my zone|present|_acme-challenge.apps.example.com|${dir.path}`,
      `--zone|my zone|cleanup|_acme-challenge.apps.example.com|${dir.path}`,
    ])
    expect(() => readFileSync(join(dir.path, 'pwned'))).toThrow()
  })

  test('a failing hook rejects with its exit code and the end of its stderr', async () => {
    const hook = new Dns01Hook('echo "zone not found" >&2; exit 3;')
    await expect(hook.present({ identifier: { value: 'a.test' } }, {}, 'v')).rejects.toThrow('dns_hook present _acme-challenge.a.test exited with 3: zone not found')
  })

  test('a hook that hangs is killed after timeoutMs', async () => {
    const hook = new Dns01Hook('sleep 5;', { timeoutMs: 100 })
    const started = Date.now()
    await expect(hook.present({ identifier: { value: 'a.test' } }, {}, 'v')).rejects.toThrow('timed out')
    expect(Date.now() - started).toBeLessThan(2000)
  })
})
