import { statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { formatIssue } from '../config/document.ts'
import { loadServerConfig } from '../config/server.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { policyDirectoryFor } from './serve.ts'
import { POLICY_EXPLAIN_USAGE, policyExplainCommand } from './policy-explain.ts'
import { POLICY_TEST_USAGE, policyTestCommand } from './policy-test.ts'

const USAGE = `usage: warren policy check [DIR] [--config FILE]\n       ${POLICY_TEST_USAGE}\n       ${POLICY_EXPLAIN_USAGE}\n`

/**
 * `warren policy check [DIR]`: every problem as file:line:col, exit 1 if there is any.
 * `warren policy test …` and `warren policy explain …` run requests through a policy (policy-test.ts, policy-explain.ts).
 */
export function policyCommand(args: string[]): number | Promise<number> {
  if (args[0] === 'test') return policyTestCommand(args.slice(1))
  if (args[0] === 'explain') return policyExplainCommand(args.slice(1))
  const { values, positionals } = parseArgs({ args, options: { config: { type: 'string' } }, allowPositionals: true, strict: true })
  const [sub, dirArg] = positionals
  if (sub !== 'check') {
    process.stderr.write(USAGE)
    return 2
  }
  const config = loadServerConfig(values.config ? { config: values.config } : {})
  const dir = dirArg ? resolve(dirArg) : config.policiesDir
  // A typo in the path must not pass as "0 error(s)": nothing was checked.
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory())
    throw new WarrenError(CODES.POLICIES_DIR_MISSING, `${dirArg ?? config.policies} is not a directory; pass the policies directory, e.g. warren policy check ./policies`)
  const result = policyDirectoryFor(config, dir).reload()
  let errors = 0
  for (const f of result.files)
    for (const issue of f.issues) {
      errors++
      process.stdout.write(formatIssue({ ...issue, file: `${dirArg ?? config.policies}/${issue.file}`.replace(/\/+/g, '/') }) + '\n')
    }
  for (const r of result.rejected) {
    errors++
    process.stdout.write(`${dirArg ?? config.policies}/${r.endpoint.source}:${r.endpoint.position.line}:${r.endpoint.position.col}: ${r.message} [${r.code}]\n`.replace(/\/\/+/g, '/'))
  }
  for (const e of result.endpoints.filter((e) => e.status === 'enabled'))
    process.stdout.write(`ok  ${e.url}  (${e.binding}, ${e.source})\n`)
  process.stdout.write(`${result.files.length} file(s), ${result.table.endpoints.length} endpoint(s), ${errors} error(s)\n`)
  return errors ? 1 : 0
}
