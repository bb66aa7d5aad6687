import { randomBytes } from 'node:crypto'
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { API_FILE_PATTERN } from '../config/load.ts'
import type { Endpoint } from '../endpoints/endpoint.ts'
import { CODES } from '../lib/errors.ts'
import { ApiError } from './errors.ts'

/**
 * Endpoints created through the API live in the policies directory as `api-<id>.yml`, one per file, so
 * hot reload applies them, they survive restarts and `warren policy check` sees them like any other.
 */

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz'

/**
 * A new endpoint id: `ep_` + a lower-case ULID (48-bit millisecond time, 80 random bits). Ids sort by
 * creation time, which is what `before_id` pagination walks.
 */
export function newEndpointId(now = Date.now()): string {
  let time = ''
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = CROCKFORD[t % 32]! + time
  let rand = ''
  for (const b of randomBytes(16)) rand += CROCKFORD[b % 32]!
  return `ep_${time}${rand}`
}

export function ownedFileName(id: string): string {
  return `api-${id}.yml`
}

/** True for ids the API could have made; anything else never becomes a file name (no `../` tricks). */
export function isOwnedId(id: string): boolean {
  return API_FILE_PATTERN.test(ownedFileName(id))
}

/** True when the endpoint comes from a file the API wrote (and may therefore change or delete). */
export function isApiOwned(ep: Endpoint): boolean {
  return ep.kind === 'cloud' && API_FILE_PATTERN.exec(ep.source)?.[1] === ep.id
}

/** What an API-owned file declares: the policies-file keys, in the order they are written. */
export interface OwnedDecl {
  url?: string
  binding?: 'public' | 'internal'
  pooling_enabled?: boolean
  description?: string
  metadata?: string | Record<string, unknown>
  traffic_policy?: string | Record<string, unknown>
  [key: string]: unknown
}

const ORDER = ['url', 'binding', 'pooling_enabled', 'description', 'metadata', 'traffic_policy']

/** The text of an API-owned file. A header says who writes it; the rest is an ordinary single-endpoint file. */
export function renderOwnedFile(id: string, decl: OwnedDecl): string {
  const ordered: Record<string, unknown> = {}
  for (const key of ORDER) if (decl[key] !== undefined) ordered[key] = decl[key]
  for (const [key, value] of Object.entries(decl)) if (!(key in ordered) && value !== undefined) ordered[key] = value
  return `# Endpoint ${id}, managed by the warren REST API (/endpoints/${id}).\n# Hand edits are reloaded, but the next API update rewrites this file.\n${stringify(ordered, { lineWidth: 0 })}`
}

/** The current text of an API-owned file, or undefined when it does not exist. */
export function readOwnedFile(dir: string, id: string): string | undefined {
  if (!isOwnedId(id)) return undefined
  try {
    return readFileSync(join(dir, ownedFileName(id)), 'utf8')
  } catch {
    return undefined
  }
}

function notWritable(dir: string, err: unknown): ApiError {
  const e = err as NodeJS.ErrnoException
  return new ApiError(
    CODES.API_POLICIES_NOT_WRITABLE,
    503,
    `Cannot write to the policies directory "${dir}": ${e.code ?? 'error'}${e.code === 'EROFS' || e.code === 'EACCES' || e.code === 'EPERM' ? ' (it is read-only to warren)' : ''}; API changes need a writable policies directory`,
    { path: dir, errno: e.code ?? null },
  )
}

/**
 * Replaces `name` in `dir` in one step: write and fsync a dot-prefixed temp file (the loader ignores
 * dot files), then rename it over the target, so hot reload never sees a half-written file.
 */
export function writeAtomically(dir: string, name: string, text: string): void {
  const tmp = join(dir, `.${name}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const fd = openSync(tmp, 'w', 0o644)
    try {
      writeSync(fd, text)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, join(dir, name))
  } catch (err) {
    try {
      rmSync(tmp, { force: true })
    } catch {}
    throw notWritable(dir, err)
  }
}

export function removeFile(dir: string, name: string): void {
  try {
    unlinkSync(join(dir, name))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw notWritable(dir, err)
  }
}
