import { X509Certificate, createPrivateKey } from 'node:crypto'
import { normalizeName } from './match.ts'

/** A certificate chain with its private key, ready for a TLS context. */
export interface CertPair {
  /** PEM chain, leaf first. */
  cert: string
  /** PEM private key. */
  key: string
  /** SANs in canonical form (lower-case; may include `*.x` patterns and IPs). */
  names: string[]
  notAfter: Date
  /** Issuer DN on one line, e.g. `CN=warren development CA, O=warren`. */
  issuer: string
  source: 'file' | 'dev' | 'acme'
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g

/** The PEM blocks of `text` by label (`CERTIFICATE`, `PRIVATE KEY`, `EC PRIVATE KEY`…). */
export function pemBlocks(text: string): { label: string; pem: string }[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1]!, pem: m[0] }))
}

export function isCertificateLabel(label: string): boolean {
  return label === 'CERTIFICATE' || label === 'TRUSTED CERTIFICATE'
}

export function isKeyLabel(label: string): boolean {
  return label.endsWith('PRIVATE KEY')
}

/**
 * The DNS and IP SANs of a certificate. Node prints them as `DNS:a, IP Address:b` and quotes a
 * value (JSON style) when it holds characters that would make that ambiguous.
 */
export function subjectAltNames(cert: X509Certificate): string[] {
  const text = cert.subjectAltName
  if (!text) return []
  const names: string[] = []
  for (const m of text.matchAll(/(?:^|, )([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    if (m[1] !== 'DNS' && m[1] !== 'IP Address') continue
    const raw = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!
    names.push(normalizeName(raw))
  }
  return [...new Set(names)]
}

/**
 * Builds a pair from PEM text, checking what a TLS handshake would trip over later: a
 * parsable leaf, a supported unencrypted key, the key matching the leaf, and at least one SAN.
 * Throws an `Error` whose message says what is wrong (without the file name).
 *
 * @example
 * parseCertPair(readFileSync('api.pem', 'utf8'), readFileSync('api.key', 'utf8'), 'file')
 */
export function parseCertPair(certText: string, keyText: string, source: CertPair['source']): CertPair {
  const certs = pemBlocks(certText).filter((b) => isCertificateLabel(b.label))
  if (certs.length === 0) throw new Error('no PEM certificate found')
  const keys = pemBlocks(keyText).filter((b) => isKeyLabel(b.label))
  if (keys.length === 0) throw new Error('no PEM private key found')
  if (keys.length > 1) throw new Error('more than one private key')
  const keyPem = keys[0]!.pem
  if (keys[0]!.label === 'ENCRYPTED PRIVATE KEY') throw new Error('the private key is encrypted; warren needs it unencrypted')
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(certs[0]!.pem)
  } catch (err) {
    throw new Error(`the certificate cannot be parsed (${(err as Error).message})`)
  }
  let matches: boolean
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(keyPem))
  } catch (err) {
    throw new Error(`the private key cannot be parsed (${(err as Error).message})`)
  }
  if (!matches) throw new Error('the private key does not match the certificate')
  const names = subjectAltNames(leaf)
  if (names.length === 0) throw new Error('the certificate has no DNS or IP subjectAltName')
  return {
    cert: certs.map((b) => b.pem).join('\n') + '\n',
    key: keyPem + '\n',
    names,
    notAfter: leaf.validToDate,
    issuer: leaf.issuer.split('\n').join(', '),
    source,
  }
}
