import { execFile } from 'node:child_process'
import type { Solver } from '../issue.ts'

/** The TXT record name DNS-01 checks for `domain` (the base domain of a wildcard). */
export function dnsRecordName(domain: string): string {
  return `_acme-challenge.${domain.toLowerCase().replace(/^\*\./, '').replace(/\.$/, '')}`
}

export interface DnsHookOptions {
  /** Working directory (the config file's); relative hook paths resolve against it. */
  cwd?: string
  /** Longest a hook call may take. */
  timeoutMs?: number
}

/**
 * DNS-01 (RFC 8555 §8.4) through a user command: `<hook> present <record> <value>` before validation
 * and `<hook> cleanup <record> <value>` after, e.g. `dns_hook: ./scripts/dns-hook.sh` →
 * `./scripts/dns-hook.sh present _acme-challenge.example.com 3L1f…`. The command line is run by
 * `/bin/sh` so it may carry its own arguments; the three values are passed as separate arguments,
 * never interpolated. `present` must exit 0 only once the record is visible to the CA.
 */
export class Dns01Hook implements Solver {
  readonly #command: string
  readonly #options: DnsHookOptions

  constructor(command: string, options: DnsHookOptions = {}) {
    this.#command = command
    this.#options = options
  }

  present(authz: { identifier: { value: string } }, _challenge: unknown, value: string): Promise<void> {
    return this.#run('present', dnsRecordName(authz.identifier.value), value)
  }

  cleanup(authz: { identifier: { value: string } }, _challenge: unknown, value: string): Promise<void> {
    return this.#run('cleanup', dnsRecordName(authz.identifier.value), value)
  }

  #run(action: 'present' | 'cleanup', record: string, value: string): Promise<void> {
    return new Promise((resolve, reject) => {
      execFile(
        '/bin/sh',
        ['-c', `${this.#command} "$@"`, 'dns_hook', action, record, value],
        { timeout: this.#options.timeoutMs ?? 120_000, ...(this.#options.cwd ? { cwd: this.#options.cwd } : {}), maxBuffer: 1024 * 1024 },
        (err, _stdout, stderr) => {
          if (!err) return resolve()
          const tail = String(stderr).trim().split('\n').slice(-3).join(' | ').slice(-400)
          const how = err.killed ? 'timed out' : `exited with ${err.code ?? err.signal ?? 'an error'}`
          reject(new Error(`dns_hook ${action} ${record} ${how}${tail ? `: ${tail}` : ''}`))
        },
      )
    })
  }
}
