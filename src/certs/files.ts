import { readdir, readFile, stat } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { isCertificateLabel, isKeyLabel, parseCertPair, pemBlocks, type CertPair } from './pair.ts'

/**
 * The user's own certificates: the top level of certs/ (never its subdirectories, which belong to
 * the dev CA and ACME). A certificate is `NAME.pem`, `NAME.crt` or `NAME.cer` holding the chain,
 * with its key in the same file or in `NAME.key` / `NAME-key.pem` (mkcert's naming).
 */

/** Extensions that may hold a certificate or a key; the watcher reloads on changes to these. */
export const CERT_FILE_EXTENSIONS: ReadonlySet<string> = new Set(['.pem', '.crt', '.cer', '.key'])

/** Files of the dev CA; they live in certs/ but are not served. */
export const DEV_CA_FILES: ReadonlySet<string> = new Set(['dev-ca.pem', 'dev-ca.key'])

export interface LoadedCert {
  /** File holding the certificate, relative to the directory. */
  file: string
  /** File holding the key (the same as `file` for a combined PEM). */
  keyFile: string
  pair: CertPair
}

export interface CertFileProblem {
  file: string
  /** std-style sentence, e.g. `Cannot load certificate "api.pem": the private key does not match the certificate`. */
  message: string
}

/** Whether a file in certs/ is a candidate: a known extension, not hidden, not the dev CA. */
export function isCertFileName(name: string): boolean {
  return !name.startsWith('.') && CERT_FILE_EXTENSIONS.has(extname(name).toLowerCase()) && !DEV_CA_FILES.has(name)
}

/**
 * Reads every certificate in `dir`. A bad, unpaired or mismatched file becomes a problem and is
 * skipped; it never stops the others from loading. A missing directory has no certificates.
 *
 * @example
 * const { loaded, problems } = await loadCertFiles('/srv/warren/certs')
 */
export async function loadCertFiles(dir: string): Promise<{ loaded: LoadedCert[]; problems: CertFileProblem[] }> {
  let names: string[]
  try {
    names = (await readdir(dir)).filter(isCertFileName).sort()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { loaded: [], problems: [] }
    throw err
  }
  const texts = new Map<string, string>()
  const problems: CertFileProblem[] = []
  for (const name of names) {
    try {
      const path = join(dir, name)
      if (!(await stat(path)).isFile()) continue
      texts.set(name, await readFile(path, 'utf8'))
    } catch (err) {
      problems.push({ file: name, message: `Cannot read "${name}": ${(err as Error).message}` })
    }
  }

  const kinds = new Map<string, { cert: boolean; key: boolean }>()
  for (const [name, text] of texts) {
    const labels = pemBlocks(text).map((b) => b.label)
    kinds.set(name, { cert: labels.some(isCertificateLabel), key: labels.some(isKeyLabel) })
  }

  const loaded: LoadedCert[] = []
  const usedKeys = new Set<string>()
  for (const [name, text] of texts) {
    if (!kinds.get(name)?.cert) continue
    const base = name.slice(0, -extname(name).length)
    const keyFile = kinds.get(name)?.key
      ? name
      : [`${base}.key`, `${base}-key.pem`].find((k) => texts.has(k) && kinds.get(k)?.key && !kinds.get(k)?.cert)
    if (keyFile === undefined) {
      problems.push({ file: name, message: `Cannot load certificate "${name}": no private key in it and no "${base}.key" or "${base}-key.pem" beside it` })
      continue
    }
    usedKeys.add(keyFile)
    try {
      loaded.push({ file: name, keyFile, pair: parseCertPair(text, texts.get(keyFile)!, 'file') })
    } catch (err) {
      const where = keyFile === name ? `"${name}"` : `"${name}" with key "${keyFile}"`
      problems.push({ file: name, message: `Cannot load certificate ${where}: ${(err as Error).message}` })
    }
  }
  for (const [name, kind] of kinds) {
    if (kind.cert || usedKeys.has(name)) continue
    problems.push({
      file: name,
      message: kind.key
        ? `Cannot load "${name}": a private key without a certificate of the same name`
        : `Cannot load "${name}": no PEM certificate or private key in it`,
    })
  }
  return { loaded, problems }
}
