/*
 * Differential test of the compiled expressions against cel-js, the reference. The table is every
 * CEL expression the policy unit tests and the policytest fixtures use: each string literal of
 * src/policy/**\/*.test.ts and each string of test/fixtures/policies, and every `${…}` inside them,
 * that parses and type-checks in on_http_response (where every variable and macro exists). Each runs
 * through compileCel (the engine's program: the generated fast code, falling back to cel-js) and
 * through cel-js alone on several requests, and must give the same value, or fail in both. Each also
 * runs as the condition of a rule in a generated phase function (policy/phase-code.ts), which must
 * match exactly when cel-js gives true.
 */
import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import ts from 'typescript'
import { parse } from 'yaml'
import { celContext } from '../context.ts'
import { runPhase, type CompiledRule } from '../engine.ts'
import type { HttpExchange, Outcome } from '../types.ts'
import { compileCel } from './compile.ts'
import { environmentFor } from './env.ts'
import { compileFast } from './fast.ts'
import { rewrite } from './rewrite.ts'
import { testExchange } from './testing.ts'

const ROOT = join(import.meta.dir, '../../..')
const PHASE = 'on_http_response'

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(ROOT, dir, f))
    .sort()
}

/** Every string literal of a TypeScript file (what the compiler sees, escapes resolved). */
function tsStrings(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false)
  const out: string[] = []
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) out.push(node.text)
    node.forEachChild(visit)
  }
  visit(source)
  return out
}

/** Every string in a YAML document (policytest fixtures may hold several). */
function yamlStrings(file: string): string[] {
  const out: string[] = []
  const visit = (value: unknown): void => {
    if (typeof value === 'string') out.push(value)
    else if (Array.isArray(value)) value.forEach(visit)
    else if (value !== null && typeof value === 'object') Object.values(value).forEach(visit)
  }
  for (const part of readFileSync(file, 'utf8').split(/^-{3,}$/m)) {
    try {
      visit(parse(part))
    } catch {
      // Fixture parts that are not YAML (expected output) hold no expressions.
    }
  }
  return out
}

/** The text and the `${…}` parts of each candidate (a rough split: nested braces are rare in tests). */
function candidates(texts: readonly string[]): string[] {
  const out = new Set<string>()
  for (const text of texts) {
    out.add(text)
    for (const m of text.matchAll(/\$\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}/g)) out.add(m[1]!)
  }
  return [...out].filter((t) => t.trim() !== '' && t.length < 500)
}

type Program = (context: Record<string, unknown>) => unknown

interface Entry {
  expr: string
  reference: Program
  compiled: Program
  fast: Program | undefined
  /** One rule with the expression as its condition; its action ends the phase with MATCHED. */
  phase: CompiledRule[]
}

const MATCHED: Outcome = { kind: 'close' }

/** The table: expressions that check, with their reference (cel-js) and compiled programs. */
function table(): Entry[] {
  const env = environmentFor(PHASE)
  const texts = [...filesUnder('src/policy', '.test.ts').flatMap(tsStrings), ...filesUnder('test/fixtures/policies', '.yaml').flatMap(yamlStrings)]
  const entries: Entry[] = []
  for (const expr of candidates(texts)) {
    let parsed
    try {
      const rewritten = rewrite(expr, env)
      if (rewritten.problems.length) continue
      parsed = env.parse(rewritten.text)
      if (!parsed.check().valid) continue
    } catch {
      continue
    }
    // Random numbers and the clock give another value on every run: nothing to compare.
    if (/\brand\.|\btime\.now\b|\bnow\(/.test(expr)) continue
    const compiled = compileCel(expr, [PHASE, 0, 'expressions', 0], 'any')
    if ('issue' in compiled) continue
    const phase = [{ name: 'probe', conditions: [compiled.program], actions: [() => MATCHED] }]
    entries.push({ expr, reference: parsed as unknown as Program, compiled: compiled.program, fast: compileFast(parsed.ast), phase })
  }
  return entries
}

const TLS = { version: '1.3', cipherSuite: 'TLS_AES_128_GCM_SHA256', sni: 'api.example.com', alpn: 'http/1.1', ja4: 't13d1516h2_8daaf6152771_e5627efa2ab1' }

/** Requests unlike each other: methods, paths, headers (repeated, cased), cookies, vars of every type, a response. */
function exchanges(): HttpExchange[] {
  const response = { status: 302, headers: new Headers([['location', 'https://api.example.com/next'], ['content-type', 'text/html; charset=UTF-8'], ['set-cookie', 'a=1; Path=/'], ['set-cookie', 'b=2'], ['x-res', 'v']]) }
  return [
    testExchange(
      { method: 'GET', url: '/api/v1/users?a=1&a=2&b=&q=x%20y', headers: { 'user-agent': 'curl/8.0', 'x-list': ['one', 'two'], cookie: 'k=v; session=abc', 'X-Api-Version': '2', authorization: 'Bearer t' } },
      { vars: { n: 3n, d: 3, s: 'x', flag: true, list: ['a', 'b'], nested: { k: 'v', n: 1n }, none: null, route: '/hello', is_get: true }, response },
    ),
    testExchange(
      { method: 'POST', url: '/admin/x', headers: { 'content-length': '2', 'content-type': 'application/json', 'x-debug': '1', 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' }, client_ip: '10.1.2.3', body: 'hi' },
      { vars: { flag: 'not a bool', n: 'three', d: 2.5, s: 1n, list: [], nested: {} }, response: { status: 500, headers: new Headers() } },
    ),
    testExchange(
      { method: 'DELETE', url: '/h%C3%A9llo?x=%ZZ', headers: { 'user-agent': 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1', 'content-length': '2000000' }, client_ip: '::1' },
      { conn: { clientIp: '::1', clientPort: 1234, serverIp: '::1', serverPort: 443, startedAt: Date.parse('2026-01-02T03:04:05Z'), tls: TLS } },
    ),
    testExchange({ method: 'OPTIONS', url: '/', headers: {}, client_ip: '192.168.1.20' }, { vars: { route: 7n } }),
  ]
}

function outcome(program: Program, context: Record<string, unknown>): { value: unknown } | { error: true } {
  try {
    return { value: program(context) }
  } catch {
    return { error: true }
  }
}

const TABLE = table()

describe('compiled expressions give what cel-js gives', () => {
  test('the table holds the unit tests’ expressions', () => {
    // A smaller table means the collection broke, not that the tests lost their expressions.
    expect(TABLE.length).toBeGreaterThan(300)
    expect(TABLE.filter((e) => e.fast).length).toBeGreaterThan(100)
    expect(TABLE.map((e) => e.expr)).toContain("req.url.path.matches('^/(api|h)')")
  })

  test.each(TABLE.map((e) => [e.expr, e] as const))('%s', (_expr, entry) => {
    for (const ex of exchanges()) {
      const context = celContext(ex)
      const want = outcome(entry.reference, context)
      expect(outcome(entry.compiled, context)).toEqual(want)
      if (!entry.fast) continue
      // The generated program may decline (throw) where cel-js answers; it never answers differently.
      const fast = outcome(entry.fast, context)
      if ('value' in fast) expect(fast as unknown).toEqual(want)
    }
    // The generated phase function computes its variables itself (runPhase drops the context above).
    for (const ex of exchanges()) {
      const want = outcome(entry.reference, celContext(ex))
      expect([entry.expr, runPhase(entry.phase, ex) === MATCHED]).toEqual([entry.expr, 'value' in want && want.value === true])
    }
  })

  test('the generated programs answer most of the table without cel-js', () => {
    let answered = 0
    for (const entry of TABLE) {
      if (!entry.fast) continue
      for (const ex of exchanges()) if ('value' in outcome(entry.fast, celContext(ex))) answered++
    }
    expect(answered).toBeGreaterThan(200)
  })

  test('the generated phase functions match on many of them (the comparison above is not all misses)', () => {
    let matched = 0
    for (const entry of TABLE) for (const ex of exchanges()) if (runPhase(entry.phase, ex) === MATCHED) matched++
    expect(matched).toBeGreaterThan(100)
  })
})

test('differential.test.ts reads the files it says it does', () => {
  expect(filesUnder('src/policy', '.test.ts').map((f) => relative(ROOT, f))).toContain('src/policy/expr/fast.test.ts')
})
