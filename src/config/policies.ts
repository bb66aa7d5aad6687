import type { Endpoint } from '../endpoints/endpoint.ts'
import type { EndpointStatus, FileStatus } from '../endpoints/status.ts'
import { EndpointTable, endpointKey, type Rejection } from '../endpoints/table.ts'
import { formatIssue } from './document.ts'
import { listPolicyFiles, loadPolicyFile, readPolicyInput, type FileResult, type LoadOptions } from './load.ts'

interface FileState {
  hash: string
  /** The last endpoints this file produced without errors: they keep serving while it is broken. */
  good: Endpoint[]
  /** Issues of the current content (empty when it loaded). */
  current: FileResult
}

export interface ReloadResult {
  table: EndpointTable
  /** Files whose content changed since the last reload (added, modified or removed). */
  changed: string[]
  files: FileStatus[]
  endpoints: EndpointStatus[]
  rejected: Rejection[]
}

/**
 * The cloud endpoints declared by a policies directory. `reload()` re-reads the directory, rebuilds
 * only files whose content hash changed, and never replaces a file's good endpoints with nothing
 * because of a broken edit.
 */
export class PolicyDirectory {
  readonly dir: string
  #options: LoadOptions
  #files = new Map<string, FileState>()
  #version = 0
  #serving = new Set<string>()

  constructor(dir: string, options: LoadOptions) {
    this.dir = dir
    this.#options = options
  }

  reload(): ReloadResult {
    const names = listPolicyFiles(this.dir)
    const changed: string[] = []
    const seen = new Set(names)
    for (const name of [...this.#files.keys()]) {
      if (!seen.has(name)) {
        this.#files.delete(name)
        changed.push(name)
      }
    }
    for (const name of names) {
      const prev = this.#files.get(name)
      const input = readPolicyInput(this.dir, name)
      if (prev && 'hash' in input && prev.hash === input.hash) continue
      // Saving in place truncates first, so a reload can read a serving file empty mid-save: that is
      // not a request to drop its endpoints (removing the file is), so they serve until it has content.
      if (prev?.good.length && 'text' in input && input.text.trim() === '') continue
      const result = loadPolicyFile(this.dir, name, this.#options, input)
      changed.push(name)
      const good = result.issues.length ? (prev?.good ?? []) : result.endpoints
      this.#files.set(name, { hash: result.hash, good, current: result })
    }

    // Endpoints that already serve go first so a newcomer cannot take their URL over.
    const all = [...this.#files.values()].flatMap((s) => s.good)
    const wasServing = (e: Endpoint) => this.#serving.has(`${e.source}\0${endpointKey(e)}`)
    const ordered = [...all.filter(wasServing), ...all.filter((e) => !wasServing(e))]
    const { table, rejected } = EndpointTable.build(++this.#version, ordered)
    this.#serving = new Set(table.endpoints.map((e) => `${e.source}\0${endpointKey(e)}`))

    const rejectedBy = new Map(rejected.map((r) => [r.endpoint, r]))
    const files: FileStatus[] = [...this.#files.entries()].map(([file, s]) => ({
      file,
      status: s.current.issues.length ? 'error' : 'ok',
      issues: s.current.issues,
      servingPrevious: s.current.issues.length > 0 && s.good.length > 0,
    }))
    const endpoints: EndpointStatus[] = all.map((e) => {
      const r = rejectedBy.get(e)
      return {
        id: e.id,
        url: e.urlText,
        binding: e.url.binding,
        account: e.account,
        source: e.source,
        status: r ? 'error' : 'enabled',
        errors: r ? [`${r.message} [${r.code}]`] : [],
      }
    })
    for (const [file, s] of this.#files) {
      if (!s.current.issues.length || s.good.length) continue
      endpoints.push({ id: '', url: '', binding: '', account: '', source: file, status: 'error', errors: s.current.issues.map(formatIssue) })
    }
    return { table, changed, files, endpoints, rejected }
  }
}
