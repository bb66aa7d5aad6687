import { createHash } from 'node:crypto'
import { chmod, mkdir, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseCertPair, type CertPair } from '../certs/pair.ts'
import { writeFileAtomic } from '../certs/write.ts'
import type { AcmeProblem } from './problem.ts'

/**
 * What warren keeps about one ACME certificate, in `certs/acme/certificates/<name>.json` beside the
 * chain (`.crt`) and key (`.key`, mode 0600). It exists from the first attempt on, so a name that
 * never got a certificate still shows its last error in `warren certs list`.
 */
export interface CertMeta {
  /** The name ordered: an exact DNS name or a `*.` wildcard. */
  name: string
  /** Directory URL of the CA that issued it (or that the last attempt went to). */
  directory: string
  /** Issuer DN of the certificate, once there is one. */
  issuer?: string
  notBefore?: string
  notAfter?: string
  obtainedAt?: string
  /** When renewal starts (two thirds of the lifetime, minus jitter). */
  renewAt?: string
  lastAttemptAt?: string
  /** The last failure; cleared by the next success. */
  lastError?: {
    at: string
    message: string
    problem?: AcmeProblem
    /** Failures in a row. */
    failures: number
    nextAttemptAt: string
  }
}

/** A stored certificate: its metadata, and the pair when the files load and match. */
export interface StoredCert {
  meta: CertMeta
  pair: CertPair | undefined
  /** Why the pair did not load, when metadata says there should be one. */
  problem?: string
}

/** The account for one directory: its key (PEM) and, once registered, its URL. */
export interface StoredAccount {
  key: string
  url?: string
}

/**
 * File name (without extension) for a certificate name: bytes outside `[a-z0-9.-]` become `%XX`
 * (`*.a.test` → `%2A.a.test`); over-long names are hashed.
 */
export function fileId(name: string): string {
  const safe = name.replace(/[^a-z0-9.-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
  return safe.length <= 200 && !safe.startsWith('.') ? safe : `h-${createHash('sha256').update(name).digest('hex').slice(0, 32)}`
}

/** One file per directory URL: `acme-v02.api.letsencrypt.org-directory`. */
export function accountId(directory: string): string {
  let text = directory
  try {
    const url = new URL(directory)
    text = `${url.host}${url.pathname}`
  } catch {}
  const safe = text.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^-+|-+$/g, '')
  return safe.length > 0 && safe.length <= 120 ? safe : `h-${createHash('sha256').update(directory).digest('hex').slice(0, 32)}`
}

/**
 * The only writer of `certs/acme/`: `accounts/<directory>.{key,json}` and
 * `certificates/<name>.{crt,key,json}`. Every file is written atomically (temp file + rename), keys
 * with mode 0600 and directories 0700. The user's `certs/*.pem` watcher never looks in here.
 */
export class AcmeStore {
  readonly #root: string

  constructor(certsDir: string) {
    this.#root = join(certsDir, 'acme')
  }

  get root(): string {
    return this.#root
  }

  async #dir(sub: string): Promise<string> {
    const dir = join(this.#root, sub)
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await chmod(this.#root, 0o700).catch(() => {})
    return dir
  }

  /** The account key for `directory`, created by `createKey` (and stored, 0600) on first use. */
  async account(directory: string, createKey: () => Promise<string>): Promise<StoredAccount> {
    const dir = await this.#dir('accounts')
    const id = accountId(directory)
    const keyPath = join(dir, `${id}.key`)
    let key: string
    try {
      key = await readFile(keyPath, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      key = await createKey()
      await writeFileAtomic(keyPath, key, { mode: 0o600 })
    }
    const info = await readJson<{ url?: string }>(join(dir, `${id}.json`))
    return { key, ...(info?.url ? { url: info.url } : {}) }
  }

  /** Remembers the account URL (and contact) the CA gave the key of `directory`. */
  async saveAccount(directory: string, info: { url: string; email?: string }): Promise<void> {
    const dir = await this.#dir('accounts')
    const body = { directory, url: info.url, ...(info.email ? { email: info.email } : {}), updatedAt: new Date().toISOString() }
    await writeFileAtomic(join(dir, `${accountId(directory)}.json`), JSON.stringify(body, null, 2) + '\n', { mode: 0o600 })
  }

  /** Stores a new certificate: key (0600), then chain, then metadata. */
  async saveCertificate(pair: CertPair, meta: CertMeta): Promise<void> {
    const dir = await this.#dir('certificates')
    const id = fileId(meta.name)
    await writeFileAtomic(join(dir, `${id}.key`), pair.key, { mode: 0o600 })
    await writeFileAtomic(join(dir, `${id}.crt`), pair.cert, { mode: 0o644 })
    await this.saveMeta(meta)
  }

  /** Rewrites the metadata alone (an attempt failed; the certificate files stay as they are). */
  async saveMeta(meta: CertMeta): Promise<void> {
    const dir = await this.#dir('certificates')
    await writeFileAtomic(join(dir, `${fileId(meta.name)}.json`), JSON.stringify(meta, null, 2) + '\n', { mode: 0o644 })
  }

  /** Every stored certificate (by its metadata file), sorted by name. Unreadable ones are skipped. */
  async load(): Promise<StoredCert[]> {
    const dir = join(this.#root, 'certificates')
    let files: string[]
    try {
      files = await readdir(dir)
    } catch {
      return []
    }
    const out: StoredCert[] = []
    for (const file of files.sort()) {
      if (!file.endsWith('.json') || file.startsWith('.')) continue
      const meta = await readJson<CertMeta>(join(dir, file))
      if (!meta || typeof meta.name !== 'string' || typeof meta.directory !== 'string') continue
      const base = join(dir, file.slice(0, -'.json'.length))
      let cert: string
      let key: string
      try {
        cert = await readFile(`${base}.crt`, 'utf8')
        key = await readFile(`${base}.key`, 'utf8')
      } catch {
        out.push({ meta, pair: undefined, ...(meta.notAfter ? { problem: 'the certificate or key file is missing' } : {}) })
        continue
      }
      try {
        out.push({ meta, pair: parseCertPair(cert, key, 'acme') })
      } catch (err) {
        out.push({ meta, pair: undefined, problem: (err as Error).message })
      }
    }
    return out.sort((a, b) => a.meta.name.localeCompare(b.meta.name))
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T
  } catch {
    return undefined
  }
}
