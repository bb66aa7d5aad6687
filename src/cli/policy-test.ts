import { readdirSync, statSync } from 'node:fs'
import { isAbsolute, join, relative } from 'node:path'
import { parseArgs } from 'node:util'
import { formatIssue } from '../config/document.ts'
import { configureLogging } from '../lib/log.ts'
import { runFixtureFile } from '../policy/test-runner.ts'

/** A path as the user would type it: relative to the working directory unless that climbs out of it. */
export function shownPath(file: string): string {
  const rel = relative(process.cwd(), file)
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? file : rel
}

export const POLICY_TEST_USAGE = 'warren policy test FILE|DIR... [--quiet]'

/** Fixture files named on the command line; a directory stands for every `*.policytest.yaml` under it. */
function fixtureFiles(paths: readonly string[]): string[] {
  const out: string[] = []
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const full = join(dir, name)
      if (statSync(full).isDirectory()) walk(full)
      else if (/\.policytest\.ya?ml$/.test(name)) out.push(full)
    }
  }
  for (const p of paths) {
    if (statSync(p, { throwIfNoEntry: false })?.isDirectory()) walk(p)
    else out.push(p)
  }
  return out
}

/**
 * `warren policy test FILE...`: runs the cases of YAML fixtures (`*.policytest.yaml`) against their
 * traffic policy, without listeners or upstreams. Prints one line per case and the reasons of each
 * failure; exit 1 when a case fails or a fixture cannot run.
 */
export async function policyTestCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { quiet: { type: 'boolean', short: 'q' } }, allowPositionals: true, strict: true })
  if (positionals.length === 0) {
    process.stderr.write(`usage: ${POLICY_TEST_USAGE}\n`)
    return 2
  }
  // Each failing case is reported below; the edge's warn lines would only repeat it.
  configureLogging({ level: 'error' })
  let passed = 0
  let failed = 0
  for (const file of fixtureFiles(positionals)) {
    const shown = shownPath(file)
    const result = await runFixtureFile(file)
    for (const issue of result.issues) {
      failed++
      process.stdout.write(`ERROR ${formatIssue({ ...issue, file: shownPath(issue.file) })}\n`)
    }
    for (const c of result.cases) {
      if (c.failures.length === 0) {
        passed++
        if (!values.quiet) process.stdout.write(`ok    ${shown}:${c.line}  ${c.name}\n`)
        continue
      }
      failed++
      process.stdout.write(`FAIL  ${shown}:${c.line}  ${c.name}\n`)
      for (const f of c.failures) process.stdout.write(`        ${f}\n`)
    }
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`)
  return failed ? 1 : 0
}
