import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CODES } from './errors.ts'

const ROOT = join(import.meta.dir, '..', '..')
const CODE = /ERR_WARREN_\d{4}/g

/** Every code the source can emit: CODES plus literal codes (the tunnel's errorReply, logs), tests left out. */
function codesInSource(): Set<string> {
  const found = new Set<string>(Object.values(CODES))
  for (const file of new Bun.Glob('src/**/*.{ts,html}').scanSync(ROOT)) {
    if (file.endsWith('.test.ts')) continue
    for (const m of readFileSync(join(ROOT, file), 'utf8').matchAll(CODE)) found.add(m[0])
  }
  return found
}

/** The codes in the first column of the error table in docs/configuration.md. */
function codesInDocs(): string[] {
  const text = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8')
  return [...text.matchAll(/^\| (ERR_WARREN_\d{4}) \|/gm)].map((m) => m[1]!)
}

describe('the error-code table in docs/configuration.md', () => {
  test('lists every code the source emits, once', () => {
    const documented = codesInDocs()
    expect(documented.filter((c, i) => documented.indexOf(c) !== i)).toEqual([])
    const missing = [...codesInSource()].filter((c) => !documented.includes(c)).sort()
    expect(missing).toEqual([])
  })

  test('lists no code the source does not have', () => {
    const source = codesInSource()
    expect(codesInDocs().filter((c) => !source.has(c))).toEqual([])
  })

  test('no two CODES names share a number', () => {
    const values = Object.values(CODES)
    expect(values.filter((c, i) => values.indexOf(c) !== i)).toEqual([])
  })
})
