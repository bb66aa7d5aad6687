import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { explainRequest, loadExplainPolicy, type ExplainSource } from './explain.ts'
import type { RequestInput } from './test-runner.ts'

const RULES = `
  on_http_request:
    - name: admins only
      expressions:
        - req.url.path.startsWith('/admin')
        - "!hasReqHeader('X-Admin')"
      actions:
        - type: custom-response
          config: {status_code: 403, body: "denied \${conn.client_ip}"}
    - name: broken
      expressions: ["hasQueryParam('boom')"]
      actions:
        - type: custom-response
          config: {body: "\${vars.nothing}"}
    - actions:
        - type: forward-external
          config: {url: "http://127.0.0.1:3000"}
`

let dir: string
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'warren-explain-'))
  writeFileSync(join(dir, 'policy.yml'), RULES.replace(/^ {2}/gm, ''))
  writeFileSync(join(dir, 'endpoints.yml'), `endpoints:\n  - url: https://one.example.com\n    traffic_policy:\n      on_http_request: [{actions: [{type: custom-response, config: {status_code: 201}}]}]\n  - url: https://two.example.com\n    traffic_policy:${RULES.replace(/^/gm, '    ')}`)
  writeFileSync(join(dir, 'f.policytest.yaml'), `endpoint: {url: "http://app.example.com:8080", upstream: "http://127.0.0.1:5000"}\npolicy:${RULES}cases: []\n`)
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function request(url: string, headers: Record<string, string> = {}): RequestInput {
  return { method: 'GET', url, headers, client_ip: '192.0.2.5' }
}

async function explain(file: string, req: RequestInput, source: ExplainSource = {}): Promise<string> {
  const test = loadExplainPolicy(join(dir, file), source)
  if ('issues' in test) throw new Error(JSON.stringify(test.issues))
  return (await explainRequest(test, req)).join('\n')
}

describe('explainRequest()', () => {
  test('shows each rule, expression results with the values they read, and the action that ended the phase', async () => {
    const out = await explain('policy.yml', request('/admin/users'))
    expect(out).toContain('endpoint https://example.com (agent endpoint, upstream http://127.0.0.1)')
    expect(out).toContain('request  GET https://example.com/admin/users  from 192.0.2.5')
    expect(out).toContain(`  rule 1 "admins only": matched
    expression 1: req.url.path.startsWith('/admin')  → true
      req.url.path = "/admin/users"
    expression 2: !hasReqHeader('X-Admin')  → true
      hasReqHeader('X-Admin') = false
    action 1: custom-response  → respond 403 (ends the phase)
  rule 2 "broken": not reached (the phase had ended)`)
    expect(out).toContain('on_http_response: no rules')
    expect(out).toEndWith('result: the client gets 403')
  })

  test('an expression that is false stops its rule; later ones are not evaluated', async () => {
    const out = await explain('policy.yml', request('/home'))
    expect(out).toContain(`  rule 1 "admins only": skipped
    expression 1: req.url.path.startsWith('/admin')  → false
      req.url.path = "/home"
    expression 2: !hasReqHeader('X-Admin')  → not evaluated (an earlier expression was not true)`)
    expect(out).toContain('  rule 3: matched (no expressions)\n    action 1: forward-external  → forward to http://127.0.0.1:3000 (ends the phase)')
    expect(out).toEndWith('result: forwarded to http://127.0.0.1:3000 (http://127.0.0.1:3000/home); the client gets 200')
  })

  test('a failing template shows why', async () => {
    const out = await explain('policy.yml', request('/?boom'))
    expect(out).toContain('    action 1: custom-response  → respond 500 ERR_WARREN_3900 (ends the phase)\n      because: Cannot evaluate "${vars.nothing}"')
  })

  test('picks an endpoint of a policies file', async () => {
    expect(await explain('endpoints.yml', request('/'))).toContain('endpoint https://one.example.com')
    const out = await explain('endpoints.yml', request('/admin', { 'x-admin': '1' }), { endpoint: 'https://two.example.com' })
    expect(out).toContain('endpoint https://two.example.com (cloud endpoint)')
    expect(out).toContain("    expression 2: !hasReqHeader('X-Admin')  → false")
  })

  test('takes the policy and the endpoint of a fixture', async () => {
    const out = await explain('f.policytest.yaml', request('/'))
    expect(out).toContain('endpoint http://app.example.com:8080 (agent endpoint, upstream http://127.0.0.1:5000)')
  })

  test('reports load problems as issues', () => {
    writeFileSync(join(dir, 'bad.yml'), 'on_http_request:\n  - expressions: ["req.nope"]\n')
    expect(loadExplainPolicy(join(dir, 'bad.yml'))).toMatchObject({ issues: [{ line: 2, col: 19, message: expect.stringContaining('No such key: nope') }] })
    expect(loadExplainPolicy(join(dir, 'endpoints.yml'), { endpoint: 'https://three.example.com' })).toMatchObject({
      issues: [{ message: 'no endpoint with url https://three.example.com in this file' }],
    })
  })
})
