import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runFixtureFile, runFixtureText } from './test-runner.ts'

const FIXTURES = join(import.meta.dir, '../../test/fixtures/policies')

describe('test/fixtures/policies/*.policytest.yaml', () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.policytest.yaml'))
  test('there are fixtures', () => expect(files.length).toBeGreaterThan(0))
  test.each(files)('%s', async (file) => {
    const result = await runFixtureFile(join(FIXTURES, file))
    expect(result.issues).toEqual([])
    expect(result.cases.length).toBeGreaterThan(0)
    expect(result.cases.filter((c) => c.failures.length)).toEqual([])
  })
})

const POLICY = `
endpoint: {url: https://a.example.com}
policy:
  on_http_request:
    - expressions: ["req.url.path == '/x'"]
      actions: [{type: custom-response, config: {status_code: 201, body: hi, headers: {x-a: b}}}]
    - actions: [{type: forward-external, config: {url: "http://127.0.0.1:1"}}]
`

describe('runFixtureText() reports', () => {
  test('each mismatch of a failing case', async () => {
    const result = await runFixtureText(
      'f.policytest.yaml',
      `${POLICY}cases:
  - request: {url: /x}
    expect: {status: 200, body_contains: [hello], headers: {x-a: c, x-b: null}, forwarded_to: "http://127.0.0.1:1"}
  - name: second
    request: {url: /y}
    expect: {forwarded: {url: "http://127.0.0.1:1/z", headers: {host: nope, x-forwarded-for: null}}, forwarded_to: "http://127.0.0.1:2"}
  - request: {url: /x}
    expect: {closed: true, forwarded: false}
`,
    )
    expect(result.issues).toEqual([])
    expect(result.cases).toEqual([
      {
        name: 'case 1: GET /x',
        line: 9,
        failures: [
          'status: expected 200, got 201',
          'response header x-a: expected "c", got "b"',
          'body: expected it to contain "hello", got "hi"',
          'forwarded_to: expected http://127.0.0.1:1, the request was not forwarded',
        ],
      },
      {
        name: 'second',
        line: 11,
        failures: [
          'forwarded_to: expected http://127.0.0.1:2, got http://127.0.0.1:1',
          'forwarded url: expected http://127.0.0.1:1/z, got http://127.0.0.1:1/y',
          'forwarded header host: expected "nope", got "a.example.com"',
          'forwarded header x-forwarded-for: expected it to be absent, got "127.0.0.1"',
        ],
      },
      { name: 'case 3: GET /x', line: 14, failures: ['expected the connection to be closed, got status 201'] },
    ])
  })

  test.each([
    { desc: 'YAML syntax', text: 'cases: [', error: /^f\.policytest\.yaml:\d+:\d+: .*\[ERR_WARREN_1002\]$/ },
    { desc: 'an unknown key', text: 'policy: {}\ncases: []\nbogus: 1\n', error: /^f\.policytest\.yaml:3:8: top level: unknown key "bogus" \[ERR_WARREN_1003\]$/ },
    { desc: 'a bad expectation', text: `${POLICY}cases:\n  - expect: {status: teapot}\n`, error: /^f\.policytest\.yaml:9:\d+: cases\[0\]\.expect\.status: .*\[ERR_WARREN_1003\]$/ },
    { desc: 'neither policy nor policy_file', text: 'cases: []\n', error: /set exactly one of policy and policy_file \[ERR_WARREN_1003\]$/ },
    {
      desc: 'a bad expression, located in the fixture',
      text: 'policy:\n  on_http_request:\n    - expressions: ["req.url.pth == 1"]\ncases: []\n',
      error: /^f\.policytest\.yaml:3:21: invalid expression "req\.url\.pth == 1": No such key: pth \(at column 9\) \[ERR_WARREN_2002\]$/,
    },
    {
      desc: 'a cloud policy that never ends a request',
      text: 'policy:\n  on_http_request: []\ncases: []\n',
      error: /must contain a terminating action .*\[ERR_WARREN_6029\]$/,
    },
    { desc: 'a bad endpoint URL', text: 'endpoint: {url: "ftp://x"}\npolicy: {}\ncases: []\n', error: /^f\.policytest\.yaml:1:17: Invalid endpoint URL .*\[ERR_WARREN_1004\]$/ },
  ])('$desc as an issue with file:line:col', async ({ text, error }) => {
    const result = await runFixtureText('f.policytest.yaml', text)
    expect(result.issues.length).toBeGreaterThan(0)
    const first = result.issues[0]!
    expect(`${first.file}:${first.line}:${first.col}: ${first.message} [${first.code}]`).toMatch(error)
  })
})

describe('policy_file', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'warren-policytest-'))
    writeFileSync(join(dir, 'policy.yml'), 'on_http_request:\n  - expressions: ["hasReqHeader(\'X-Key\')"]\n    actions: [{type: custom-response, config: {status_code: 202}}]\n  - actions: [{type: custom-response, config: {status_code: 401, body: "${req.nope}"}}]\n')
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('is read relative to the fixture; its issues are located in it', async () => {
    const file = join(dir, 'a.policytest.yaml')
    writeFileSync(file, 'policy_file: policy.yml\ncases: []\n')
    const result = await runFixtureFile(file)
    expect(result.issues).toMatchObject([{ file: join(dir, 'policy.yml'), line: 4, message: expect.stringContaining('No such key: nope') }])
  })

  test('runs its cases', async () => {
    writeFileSync(join(dir, 'policy.yml'), 'on_http_request:\n  - expressions: ["hasReqHeader(\'X-Key\')"]\n    actions: [{type: custom-response, config: {status_code: 202}}]\n  - actions: [{type: custom-response, config: {status_code: 401}}]\n')
    const file = join(dir, 'b.policytest.yaml')
    writeFileSync(file, 'policy_file: policy.yml\ncases:\n  - {request: {headers: {x-key: "1"}}, expect: {status: 202}}\n  - {expect: {status: 401}}\n')
    const result = await runFixtureFile(file)
    expect(result.issues).toEqual([])
    expect(result.cases.map((c) => c.failures)).toEqual([[], []])
  })
})
