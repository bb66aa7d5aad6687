import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// bun test runs no process-exit hooks, and an afterAll registered from a helper may run before a later
// test of the same file uses the files. So each test process gets one root, and roots left by test
// processes that are gone are removed when the next one starts.
const PREFIX = 'warren-tests-'
const root = join(tmpdir(), `${PREFIX}${process.pid}`)

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

for (const name of readdirSync(tmpdir())) {
  const pid = Number(name.slice(PREFIX.length))
  if (name.startsWith(PREFIX) && Number.isInteger(pid) && pid !== process.pid && !alive(pid)) {
    rmSync(join(tmpdir(), name), { recursive: true, force: true })
  }
}
mkdirSync(root, { recursive: true })

/** A fresh directory for this test process; removed by the next test run once this process is gone. */
export function scratchDir(prefix: string): string {
  return mkdtempSync(join(root, prefix))
}
