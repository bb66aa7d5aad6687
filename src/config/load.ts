import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import * as v from 'valibot'
import type { Endpoint } from '../endpoints/endpoint.ts'
import { CODES, WarrenError } from '../lib/errors.ts'
import { compilePolicy, validatePolicy } from '../policy/engine.ts'
import type { ClusterScope } from '../policy/types.ts'
import { ConfigIssues } from '../policy/issue.ts'
import { describeIssue, issuePath, parseSource, type FileIssue, type SourceDocument } from './document.ts'
import { EndpointSpec, PolicyFileSpec, type EndpointDecl } from './schema/v1/endpoint.ts'
import { formatEndpointUrl, parseEndpointUrl, type Scheme } from './url.ts'

export interface LoadOptions {
  /** Port a URL without one matches, per scheme (public_ports, else the listener's port). */
  defaultPorts: Readonly<Record<Scheme, number>>
  /** Account for files that name none. */
  defaultAccount: string
  /** The edge's session-cookie key for oauth/openid-connect (absent when files are only checked). */
  sessionKey?: Uint8Array | undefined
  /** Where `scope: cluster` state lives (absent when files are only checked, or the edge is one process). */
  clusterScope?: ClusterScope | undefined
}

/** The outcome of loading one policies file: its endpoints, or the issues that stopped it. */
export interface FileResult {
  /** Path relative to the policies directory. */
  file: string
  /** Hash of the file and every traffic_policy_file it pulls in: unchanged hash → nothing to rebuild. */
  hash: string
  endpoints: Endpoint[]
  issues: FileIssue[]
}

/** Lists the policies files of a directory: `*.yml`/`*.yaml`, recursively, `_`- and `.`-prefixed ignored. */
export function listPolicyFiles(dir: string): string[] {
  const out: string[] = []
  function walk(sub: string): void {
    let names: string[]
    try {
      names = readdirSync(join(dir, sub))
    } catch {
      return
    }
    for (const name of names.sort()) {
      if (name.startsWith('_') || name.startsWith('.')) continue
      const rel = sub ? `${sub}/${name}` : name
      let isDir = false
      try {
        isDir = statSync(join(dir, rel)).isDirectory()
      } catch {
        continue
      }
      if (isDir) walk(rel)
      else if (/\.ya?ml$/i.test(name)) out.push(rel)
    }
  }
  walk('')
  return out
}

/**
 * Files the REST API owns: `api-<endpoint id>.yml` at the top of the policies directory, one endpoint
 * each (src/api writes them). Any other file is hand-written and read-only to the API.
 */
export const API_FILE_PATTERN = /^api-(ep_[0-9a-hjkmnp-tv-z]{26})\.yml$/

function endpointId(file: string, index: number, url: string): string {
  // An API-owned file is named after its endpoint, so the id survives an update of the URL.
  const owned = index === 0 ? API_FILE_PATTERN.exec(file) : null
  if (owned) return owned[1]!
  return 'ep_' + createHash('sha256').update(`${file}\0${index}\0${url}`).digest('hex').slice(0, 20)
}

export type FileInput = { text: string; hash: string } | { error: string }

/** Reads a file's text plus the texts of referenced policy files, for the change hash. */
export function readPolicyInput(dir: string, file: string): FileInput {
  try {
    const text = readFileSync(join(dir, file), 'utf8')
    const hash = createHash('sha256').update(text)
    // Referenced policy files change the outcome too; hash them in so an edit there reloads.
    for (const m of text.matchAll(/traffic_policy_file["']?\s*:\s*["']?([^"'\n#]+)/g)) {
      try {
        hash.update(readFileSync(resolve(dir, dirname(file), m[1]!.trim())))
      } catch {
        hash.update('\0missing')
      }
    }
    return { text, hash: hash.digest('hex') }
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) }
  }
}

/** Loads one policies file. Pure apart from reading files: no listener or table is touched. */
export function loadPolicyFile(
  dir: string,
  file: string,
  options: LoadOptions,
  input: FileInput = readPolicyInput(dir, file),
): FileResult {
  if ('error' in input) {
    return { file, hash: '', endpoints: [], issues: [{ file, line: 1, col: 1, code: CODES.POLICY_FILE_SYNTAX, message: `cannot read: ${input.error}` }] }
  }
  const issues: FileIssue[] = []
  const endpoints = parseFileText(dir, file, input.text, options, issues)
  return { file, hash: input.hash, endpoints: issues.length ? [] : endpoints, issues }
}

function parseFileText(dir: string, file: string, text: string, options: LoadOptions, issues: FileIssue[]): Endpoint[] {
  const parsed = parseSource(text)
  if ('errors' in parsed) {
    for (const e of parsed.errors) issues.push({ file, ...e, code: e.code ?? CODES.POLICY_FILE_SYNTAX })
    return []
  }
  const doc = parsed.doc
  const at = (path: readonly (string | number)[], code: string, message: string) =>
    issues.push({ file, ...doc.locate(path), code, message })

  const value = doc.value
  if (value === null || value === undefined) return [] // an empty file declares nothing
  let decls: { decl: EndpointDecl; path: (string | number)[] }[]
  let fileAccount: string | undefined
  if (typeof value === 'object' && !Array.isArray(value) && 'endpoints' in value) {
    const res = v.safeParse(PolicyFileSpec, value)
    if (!res.success) {
      for (const i of res.issues) at(issuePath(i), CODES.POLICY_FILE_SCHEMA, describeIssue(i))
      return []
    }
    fileAccount = res.output.account
    decls = res.output.endpoints.map((decl, i) => ({ decl, path: ['endpoints', i] }))
  } else {
    const res = v.safeParse(EndpointSpec, value)
    if (!res.success) {
      for (const i of res.issues) at(issuePath(i), CODES.POLICY_FILE_SCHEMA, describeIssue(i))
      return []
    }
    decls = [{ decl: res.output, path: [] }]
  }

  const out: Endpoint[] = []
  decls.forEach(({ decl, path }, index) => {
    let url
    try {
      url = parseEndpointUrl(decl.url, decl.binding ? { binding: decl.binding } : {})
    } catch (err) {
      at([...path, 'url'], CODES.ENDPOINT_URL_INVALID, err instanceof WarrenError ? err.message : String(err))
      return
    }
    const policy = loadEndpointPolicy(dir, file, decl, path, doc, url.scheme, issues, options)
    if (!policy) return
    const urlText = formatEndpointUrl(url)
    const port = url.port ?? options.defaultPorts[url.scheme]
    const id = endpointId(file, index, urlText)
    out.push({
      id,
      kind: 'cloud',
      url,
      urlText,
      port,
      account: decl.account ?? fileAccount ?? options.defaultAccount,
      poolingEnabled: decl.pooling_enabled,
      source: file,
      position: doc.locate([...path, 'url']),
      description: decl.description,
      metadata: decl.metadata,
      policy,
      info: { id, url: urlText, scheme: url.scheme, host: url.host, port, binding: url.binding },
    })
  })
  return out
}

/** Finds the endpoint's policy (inline map, inline YAML/JSON string or a file), validates and compiles it. */
function loadEndpointPolicy(
  dir: string,
  file: string,
  decl: EndpointDecl,
  path: (string | number)[],
  doc: SourceDocument,
  scheme: Scheme,
  issues: FileIssue[],
  edge: Pick<LoadOptions, 'sessionKey' | 'clusterScope'>,
) {
  let raw: unknown = decl.traffic_policy
  // Issues inside the policy are located in this document unless the policy came from elsewhere.
  let locate = (p: readonly (string | number)[]) => ({ file, ...doc.locate([...path, 'traffic_policy', ...p]) })
  if (decl.traffic_policy !== undefined && decl.traffic_policy_file !== undefined) {
    issues.push({ file, ...doc.locate([...path, 'traffic_policy_file']), code: CODES.POLICY_FILE_SCHEMA, message: 'set traffic_policy or traffic_policy_file, not both' })
    return undefined
  }
  if (typeof raw === 'string' || decl.traffic_policy_file !== undefined) {
    let text: string
    let source = file
    if (decl.traffic_policy_file !== undefined) {
      const full = resolve(dir, dirname(file), decl.traffic_policy_file)
      source = relative(dir, full)
      try {
        text = readFileSync(full, 'utf8')
      } catch (err) {
        issues.push({ file, ...doc.locate([...path, 'traffic_policy_file']), code: CODES.POLICY_FILE_MISSING, message: `cannot read traffic_policy_file "${decl.traffic_policy_file}": ${(err as Error).message}` })
        return undefined
      }
    } else text = raw as string
    const sub = parseSource(text)
    if ('errors' in sub) {
      for (const e of sub.errors)
        issues.push(source === file ? { file, ...doc.locate([...path, 'traffic_policy']), code: e.code ?? CODES.POLICY_FILE_SYNTAX, message: `traffic_policy: ${e.message}` } : { file: source, line: e.line, col: e.col, code: e.code ?? CODES.POLICY_FILE_SYNTAX, message: e.message })
      return undefined
    }
    raw = sub.doc.value
    locate = source === file ? (p) => ({ file, ...doc.locate([...path, 'traffic_policy']) }) : (p) => ({ file: source, ...sub.doc.locate(p) })
  }
  try {
    return compilePolicy(validatePolicy(raw), { scheme, cloud: true, sessionKey: edge.sessionKey, clusterScope: edge.clusterScope })
  } catch (err) {
    if (!(err instanceof ConfigIssues)) throw err
    for (const i of err.issues) issues.push({ ...locate(i.path), code: i.code, message: i.message })
    return undefined
  }
}
