import { describe, expect, spyOn, test } from 'bun:test'
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from '../certs/testing.ts'
import { caCommand } from './ca.ts'

/** Runs the command in-process and collects what it wrote. */
async function ca(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const o = spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => ((out += String(chunk)), true))
  const e = spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => ((err += String(chunk)), true))
  try {
    return { code: await caCommand(args), out, err }
  } finally {
    o.mockRestore()
    e.mockRestore()
  }
}


describe('warren ca path', () => {
  test('creates the CA on first use, prints only its path, and reuses it afterwards', async () => {
    using dir = tempDir()
    const certs = join(dir.path, 'certs')
    const first = await ca(['path', '--certs', certs])
    expect(first.code).toBe(0)
    expect(first.out).toBe(`${join(certs, 'dev-ca.pem')}\n`)
    expect(first.err).toContain('created the development CA')
    expect(new X509Certificate(readFileSync(join(certs, 'dev-ca.pem'))).subject).toContain('CN=warren development CA')
    const pem = readFileSync(join(certs, 'dev-ca.pem'), 'utf8')

    const second = await ca(['path', '--certs', certs])
    expect(second).toEqual({ code: 0, out: first.out, err: '' })
    expect(readFileSync(join(certs, 'dev-ca.pem'), 'utf8')).toBe(pem)
  })

  test('reads certs: from the config file, relative to it, and notes a non-dev mode', async () => {
    using dir = tempDir()
    writeFileSync(join(dir.path, 'warren.yaml'), 'certs: ./my-certs\ntls: {mode: files}\n')
    const r = await ca(['path', '--config', join(dir.path, 'warren.yaml')])
    expect(r.code).toBe(0)
    expect(r.out).toBe(`${join(dir.path, 'my-certs', 'dev-ca.pem')}\n`)
    expect(r.err).toContain('tls.mode is "files"')
  })

  test.each<{ args: string[] }>([{ args: [] }, { args: ['install'] }, { args: ['path', 'extra'] }])('usage error for $args', async ({ args }) => {
    const r = await ca(args)
    expect(r.code).toBe(2)
    expect(r.err).toContain('usage: warren ca path')
  })
})
