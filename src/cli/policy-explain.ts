import { parseArgs } from 'node:util'
import { formatIssue } from '../config/document.ts'
import { configureLogging } from '../lib/log.ts'
import { explainRequest, loadExplainPolicy } from '../policy/explain.ts'
import { shownPath } from './policy-test.ts'

export const POLICY_EXPLAIN_USAGE =
  "warren policy explain FILE --request 'GET /path' [-H 'name: value']... [--client-ip IP] [--body TEXT] [--endpoint URL] [--upstream URL] [--status N]"

/**
 * `warren policy explain FILE --request 'GET /path'`: runs one request through the traffic policy
 * of FILE (a traffic policy, a policies file or a `*.policytest.yaml`) and prints each rule, what
 * every expression gave and why, and which action ended each phase.
 */
export async function policyExplainCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      request: { type: 'string', short: 'X' },
      header: { type: 'string', short: 'H', multiple: true },
      'client-ip': { type: 'string' },
      body: { type: 'string' },
      endpoint: { type: 'string' },
      upstream: { type: 'string' },
      status: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  })
  // Failures are part of the explanation; the log lines would only repeat them.
  configureLogging({ level: 'error' })
  const [file] = positionals
  if (!file || positionals.length > 1) {
    process.stderr.write(`usage: ${POLICY_EXPLAIN_USAGE}\n`)
    return 2
  }
  const m = /^\s*(?:([A-Za-z]+)\s+)?(\S+)\s*$/.exec(values.request ?? 'GET /')
  if (!m) {
    process.stderr.write(`warren policy explain: --request must look like 'GET /path' or '/path'\n`)
    return 2
  }
  const headers: Record<string, string[]> = {}
  for (const h of values.header ?? []) {
    const colon = h.indexOf(':')
    if (colon <= 0) {
      process.stderr.write(`warren policy explain: -H must look like 'name: value', got "${h}"\n`)
      return 2
    }
    ;(headers[h.slice(0, colon).trim().toLowerCase()] ??= []).push(h.slice(colon + 1).trim())
  }
  const status = values.status === undefined ? undefined : Number(values.status)
  if (status !== undefined && !(Number.isInteger(status) && status >= 100 && status <= 999)) {
    process.stderr.write('warren policy explain: --status must be an HTTP status code\n')
    return 2
  }
  const test = loadExplainPolicy(file, { endpoint: values.endpoint, upstream: values.upstream })
  if ('issues' in test) {
    for (const issue of test.issues) process.stdout.write(`${formatIssue({ ...issue, file: shownPath(issue.file) })}\n`)
    return 1
  }
  const lines = await explainRequest(
    test,
    {
      method: (m[1] ?? 'GET').toUpperCase(),
      url: m[2]!,
      headers,
      client_ip: values['client-ip'] ?? '127.0.0.1',
      ...(values.body !== undefined ? { body: values.body } : {}),
    },
    status === undefined ? {} : { upstream: { status, headers: {}, body: '' } },
  )
  process.stdout.write(`${lines.join('\n')}\n`)
  return 0
}
