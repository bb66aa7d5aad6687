import { afterEach, beforeEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PolicyDirectory } from './policies.ts'

const OPTIONS = { defaultPorts: { http: 8080, https: 8443, tls: 8443, tcp: 0 }, defaultAccount: 'default' }
/** A "billion laughs" document: nine levels of nine aliases, 387 million strings once expanded. */
const ALIAS_BOMB = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
${'bcdefghi'
  .split('')
  .map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`)
  .join('\n')}
`
const ok = (url: string, body = 'hi') => `url: ${url}
traffic_policy:
  on_http_request:
    - actions:
        - type: custom-response
          config: {body: ${body}}
`

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'warren-policies-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

function issuesOf(text: string, name = 'e.yml'): string[] {
  writeFileSync(join(dir, name), text)
  const result = new PolicyDirectory(dir, OPTIONS).reload()
  return result.files.flatMap((f) => f.issues.map((i) => `${i.file}:${i.line}:${i.col}: ${i.message} [${i.code}]`))
}

describe('PolicyDirectory load errors name file, line, column and field', () => {
  test.each([
    {
      desc: 'YAML syntax error',
      text: 'url: http://a.example.com\ntraffic_policy: [unclosed\n',
      want: /^e\.yml:\d+:\d+: .* \[ERR_WARREN_1002\]$/,
    },
    {
      desc: 'YAML alias bomb, at the alias that copies the most',
      text: ALIAS_BOMB,
      want: /^e\.yml:9:8: YAML aliases expand too far: \*h alone copies \d+ values; refused as an alias bomb \[ERR_WARREN_1007\]$/,
    },
    {
      desc: 'YAML alias bomb inside a traffic_policy string',
      text: `url: http://a.example.com\ntraffic_policy: ${JSON.stringify(ALIAS_BOMB)}\n`,
      want: /^e\.yml:2:17: traffic_policy: YAML aliases expand too far.* \[ERR_WARREN_1007\]$/,
    },
    {
      desc: 'alias without its anchor',
      text: 'url: http://a.example.com\ntraffic_policy: *nope\n',
      want: /^e\.yml:2:17: unknown alias \*nope: its anchor &nope must be set before it \[ERR_WARREN_1002\]$/,
    },
    {
      desc: 'unknown top-level key',
      text: 'url: http://a.example.com\nbogus: 1\n',
      want: /^e\.yml:2:8: top level: unknown key "bogus" \[ERR_WARREN_1003\]$/,
    },
    {
      desc: 'bad URL',
      text: 'endpoints:\n  - url: ftp://a.example.com\n',
      want: /^e\.yml:2:10: Invalid endpoint URL "ftp:\/\/a\.example\.com": scheme "ftp" .* \[ERR_WARREN_1004\]$/,
    },
    {
      desc: 'unknown action type',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_request:\n    - actions:\n        - type: rewrite-url\n',
      want: /^e\.yml:5:17: .*unknown action type "rewrite-url".* \[ERR_WARREN_2001\]$/,
    },
    {
      desc: 'wrong field type in action config',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_request:\n    - actions:\n        - type: custom-response\n          config:\n            status_code: "teapot"\n',
      want: /^e\.yml:7:26: on_http_request\[0\]\.actions\[0\]\.config\.status_code: .* \[ERR_WARREN_2001\]$/,
    },
    {
      desc: 'bad CEL expression',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_request:\n    - expressions: ["req.url.path.startsWith("]\n      actions:\n        - type: custom-response\n',
      want: /^e\.yml:4:21: invalid expression .* \[ERR_WARREN_2002\]$/,
    },
    {
      desc: 'non-terminating cloud endpoint policy',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_request: []\n',
      want: /^e\.yml:3:3: .*terminating action.* \[ERR_WARREN_6029\]$/,
    },
    {
      desc: 'http phase on a tcp endpoint',
      text: 'url: tcp://a.example.com:9000\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response}]\n',
      want: /^e\.yml:4:5: on_http_request does not apply to tcp:\/\/ endpoints.* \[ERR_WARREN_2001\]$/,
    },
    {
      desc: 'action in a phase it does not support',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_response:\n    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:1"}}]\n  on_http_request:\n    - actions: [{type: custom-response}]\n',
      want: /^e\.yml:4:24: action "forward-external" cannot run in on_http_response.* \[ERR_WARREN_2001\]$/,
    },
    {
      desc: 'sse-find-replace outside on_event_stream_message',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response}]\n  on_http_response:\n    - actions: [{type: sse-find-replace, config: {replacements: [{from: a}]}}]\n',
      want: /^e\.yml:6:24: action "sse-find-replace" cannot run in on_http_response \(it runs in on_event_stream_message\) \[ERR_WARREN_2001\]$/,
    },
    {
      desc: 'an action ngrok does not list for on_event_stream_message',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response}]\n  on_event_stream_message:\n    - actions:\n        - type: log\n          config: {metadata: {a: b}}\n',
      want: /^e\.yml:7:17: action "log" cannot run in on_event_stream_message \(it runs in on_tcp_connect, on_http_request, on_http_response\) \[ERR_WARREN_2001\]$/,
    },
    {
      desc: 'sse-find-replace on a field it cannot change',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response}]\n  on_event_stream_message:\n    - actions:\n        - type: sse-find-replace\n          config:\n            replacements:\n              - field: event\n                from: a\n',
      want: /^e\.yml:10:24: on_event_stream_message\[0\]\.actions\[0\]\.config\.replacements\[0\]\.field: must be "data" or "retry" \[ERR_WARREN_2001\]$/,
    },
    {
      desc: 'on_event_stream_message on a tcp endpoint',
      text: 'url: tcp://a.example.com:9000\ntraffic_policy:\n  on_event_stream_message:\n    - actions: [{type: sse-find-replace, config: {replacements: [{from: a}]}}]\n',
      want: /^e\.yml:4:5: on_event_stream_message does not apply to tcp:\/\/ endpoints.* \[ERR_WARREN_2001\]$/,
    },
    {
      desc: 'an expression reading a variable the message phase does not have',
      text: 'url: http://a.example.com\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response}]\n  on_event_stream_message:\n    - expressions: ["sse.data == \'x\'"]\n      actions: [{type: sse-find-replace, config: {replacements: [{from: a}]}}]\n',
      want: /^e\.yml:6:21: invalid expression "sse\.data == 'x'": Unknown variable: sse.* \[ERR_WARREN_2002\]$/,
    },
  ])('$desc', ({ text, want }) => {
    const issues = issuesOf(text)
    expect(issues.length).toBeGreaterThan(0)
    expect(issues.some((i) => want.test(i))).toBe(true)
  })

  test('traffic_policy_file issues point into the referenced file', () => {
    writeFileSync(join(dir, '_p.yml'), 'on_http_request:\n  - actions:\n      - type: nope\n')
    const issues = issuesOf('url: http://a.example.com\ntraffic_policy_file: _p.yml\n')
    expect(issues[0]).toMatch(/^_p\.yml:3:15: .*unknown action type "nope"/)
  })

  test('a few ordinary aliases are accepted', () => {
    const text = 'endpoints:\n  - url: http://a.example.com\n    traffic_policy: &p\n      on_http_request:\n        - actions: [{type: custom-response}]\n  - url: http://b.example.com\n    traffic_policy: *p\n'
    expect(issuesOf(text)).toEqual([])
  })

  test('traffic_policy as a JSON string is accepted', () => {
    const json = JSON.stringify({ on_http_request: [{ actions: [{ type: 'custom-response', config: { body: 'j' } }] }] })
    expect(issuesOf(`url: http://a.example.com\ntraffic_policy: '${json}'\n`)).toEqual([])
  })

  test('a whole file in JSON is accepted', () => {
    const json = JSON.stringify({ endpoints: [{ url: 'http://j.example.com', traffic_policy: { on_http_request: [{ actions: [{ type: 'custom-response' }] }] } }] })
    expect(issuesOf(json, 'j.yaml')).toEqual([])
  })
})

describe('PolicyDirectory.reload()', () => {
  test('rebuilds only changed files and keeps a broken file\'s last good endpoints', () => {
    const policies = new PolicyDirectory(dir, OPTIONS)
    writeFileSync(join(dir, 'a.yml'), ok('http://a.example.com'))
    writeFileSync(join(dir, 'b.yml'), ok('http://b.example.com'))
    const first = policies.reload()
    expect(first.changed.sort()).toEqual(['a.yml', 'b.yml'])
    expect(first.table.endpoints.map((e) => e.urlText).sort()).toEqual(['http://a.example.com', 'http://b.example.com'])

    expect(policies.reload().changed).toEqual([])

    writeFileSync(join(dir, 'a.yml'), 'url: [broken')
    const broken = policies.reload()
    expect(broken.changed).toEqual(['a.yml'])
    expect(broken.table.endpoints.map((e) => e.urlText).sort()).toEqual(['http://a.example.com', 'http://b.example.com'])
    const status = broken.files.find((f) => f.file === 'a.yml')!
    expect(status.status).toBe('error')
    expect(status.servingPrevious).toBe(true)

    rmSync(join(dir, 'a.yml'))
    expect(policies.reload().table.endpoints.map((e) => e.urlText)).toEqual(['http://b.example.com'])
  })

  test('a serving file seen empty (an editor mid-save) keeps its endpoints until it has content or is removed', () => {
    // Saving in place truncates first; a reload that read the empty file dropped the endpoints (404s
    // under load in bench/soak).
    const policies = new PolicyDirectory(dir, OPTIONS)
    writeFileSync(join(dir, 'a.yml'), ok('http://a.example.com', 'v1'))
    policies.reload()
    writeFileSync(join(dir, 'a.yml'), '')
    const empty = policies.reload()
    expect(empty.table.endpoints.map((e) => e.urlText)).toEqual(['http://a.example.com'])
    expect(empty.changed).toEqual([])
    writeFileSync(join(dir, 'a.yml'), ok('http://a.example.com', 'v2'))
    const saved = policies.reload()
    expect(saved.changed).toEqual(['a.yml'])
    expect(saved.table.endpoints.map((e) => e.urlText)).toEqual(['http://a.example.com'])
    rmSync(join(dir, 'a.yml'))
    expect(policies.reload().table.endpoints).toEqual([])
    // A file that never served may be empty: it simply has no endpoints.
    writeFileSync(join(dir, 'new.yml'), '\n')
    expect(policies.reload().changed).toEqual(['new.yml'])
  })

  test('an alias bomb in one file leaves every other file, and its own last good endpoints, serving', () => {
    const policies = new PolicyDirectory(dir, OPTIONS)
    writeFileSync(join(dir, 'a.yml'), ok('http://a.example.com'))
    writeFileSync(join(dir, 'b.yml'), ok('http://b.example.com'))
    policies.reload()
    writeFileSync(join(dir, 'a.yml'), ALIAS_BOMB)
    writeFileSync(join(dir, 'c.yml'), ok('http://c.example.com'))
    const started = performance.now()
    const result = policies.reload()
    expect(performance.now() - started).toBeLessThan(2000)
    expect(result.table.endpoints.map((e) => e.urlText).sort()).toEqual(['http://a.example.com', 'http://b.example.com', 'http://c.example.com'])
    expect(result.files.find((f) => f.file === 'a.yml')).toMatchObject({ status: 'error', servingPrevious: true, issues: [{ code: 'ERR_WARREN_1007', line: 9, col: 8 }] })
  })

  test('a pool conflict keeps the endpoint that was serving first, even if its file sorts later', () => {
    const policies = new PolicyDirectory(dir, OPTIONS)
    writeFileSync(join(dir, 'z.yml'), ok('http://same.example.com', 'z'))
    policies.reload()
    writeFileSync(join(dir, 'a.yml'), ok('http://same.example.com', 'a'))
    const result = policies.reload()
    expect(result.table.endpoints.map((e) => e.source)).toEqual(['z.yml'])
    expect(result.rejected.map((r) => r.endpoint.source)).toEqual(['a.yml'])
    expect(result.endpoints.find((e) => e.source === 'a.yml')!.errors[0]).toContain('z.yml')
  })

  test('ignores _-prefixed and non-YAML files, reads subdirectories', () => {
    writeFileSync(join(dir, '_ignored.yml'), 'not: [valid')
    writeFileSync(join(dir, 'notes.txt'), 'hello')
    mkdirSync(join(dir, 'team'))
    writeFileSync(join(dir, 'team', 'c.yaml'), ok('http://c.example.com'))
    const result = new PolicyDirectory(dir, OPTIONS).reload()
    expect(result.files.map((f) => f.file)).toEqual(['team/c.yaml'])
    expect(result.table.endpoints.map((e) => e.urlText)).toEqual(['http://c.example.com'])
  })
})
