import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import * as v from 'valibot'
import { CODES, WarrenError } from '../lib/errors.ts'
import { tokenDigest } from '../tunnel/accounts.ts'
import { describeIssue, formatIssue, issuePath, parseSource, type SourceDocument } from './document.ts'
import { ServerConfigSpec, type ServerConfig } from './schema/v1/server.ts'

/** Command-line overrides; each wins over the file. */
export interface ServerFlags {
  config?: string
  policies?: string
  certs?: string
  http?: string
  https?: string
  agent?: string
  api?: string
  ssh?: string
  domain?: string
}

export interface ResolvedConfig extends ServerConfig {
  /** The file read, if any. */
  source: string | undefined
  /** Absolute paths. */
  policiesDir: string
  certsDir: string
}

/** `host:port` → parts; IPv6 brackets removed. */
export function splitAddress(addr: string): { hostname: string; port: number } {
  const i = addr.lastIndexOf(':')
  return { hostname: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) }
}

/**
 * Reads `warren.yaml` (the `--config` path, else `./warren.yaml` when present, else the embedded
 * defaults), validates it strictly and applies flags. Paths in the file are relative to the file.
 */
export function loadServerConfig(flags: ServerFlags = {}): ResolvedConfig {
  const path = flags.config ?? (existsSync('warren.yaml') ? 'warren.yaml' : undefined)
  let raw: unknown = {}
  let doc: SourceDocument | undefined
  const base = path ? dirname(resolve(path)) : process.cwd()
  if (path) {
    let text: string
    try {
      text = readFileSync(path, 'utf8')
    } catch (err) {
      throw new WarrenError(CODES.CONFIG_INVALID, `Cannot read config "${path}": ${(err as Error).message}`)
    }
    const parsed = parseSource(text)
    if ('errors' in parsed)
      throw new WarrenError(CODES.CONFIG_INVALID, parsed.errors.map((e) => formatIssue({ file: path, ...e, code: e.code ?? CODES.CONFIG_INVALID })).join('\n'))
    doc = parsed.doc
    raw = doc.value ?? {}
    const result = v.safeParse(ServerConfigSpec, raw)
    if (!result.success)
      throw new WarrenError(
        CODES.CONFIG_INVALID,
        result.issues.map((i) => formatIssue({ file: path, ...parsed.doc.locate(issuePath(i)), code: CODES.CONFIG_INVALID, message: describeIssue(i) })).join('\n'),
      )
  }
  const config = v.parse(ServerConfigSpec, raw)
  const shared = sharedAuthtoken(config.accounts)
  if (shared)
    throw new WarrenError(
      CODES.CONFIG_INVALID,
      formatIssue({
        file: path ?? 'warren.yaml',
        ...(doc?.locate(shared.at) ?? { line: 1, col: 1 }),
        code: CODES.CONFIG_INVALID,
        message: `accounts "${shared.first}" and "${shared.second}" list the same authtoken: an agent could not tell which account it is; give each account its own`,
      }),
    )
  const listen = { ...config.listen }
  if (flags.http) listen.http = flags.http
  if (flags.https) listen.https = flags.https
  if (flags.agent) listen.agent = flags.agent
  if (flags.api) listen.api = flags.api
  if (flags.ssh) listen.ssh = flags.ssh
  const checked = v.safeParse(ServerConfigSpec, { ...(raw as object), listen })
  if (!checked.success) throw new WarrenError(CODES.CONFIG_INVALID, `Invalid flag: ${describeIssue(checked.issues[0]!)}`)
  return {
    ...config,
    listen,
    domain: flags.domain ?? config.domain,
    source: path,
    policiesDir: flags.policies ? resolve(flags.policies) : resolve(base, config.policies),
    certsDir: flags.certs ? resolve(flags.certs) : resolve(base, config.certs),
  }
}

/** The first authtoken two accounts share (plain or `sha256:` forms compared by digest), with its YAML path. */
function sharedAuthtoken(accounts: ServerConfig['accounts']): { first: string; second: string; at: (string | number)[] } | undefined {
  const owner = new Map<string, string>()
  for (const [i, account] of accounts.entries())
    for (const [j, token] of account.authtokens.entries()) {
      const digest = tokenDigest(token).toString('hex')
      const first = owner.get(digest)
      if (first !== undefined && first !== account.name) return { first, second: account.name, at: ['accounts', i, 'authtokens', j] }
      owner.set(digest, account.name)
    }
  return undefined
}
