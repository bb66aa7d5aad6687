// @peculiar/x509 2.x throws at import time ("tsyringe requires a reflect polyfill") unless this
// polyfill is loaded first; ES modules evaluate imports in order, so keep it above the x509 import.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { X509Certificate as NodeX509, createPrivateKey, randomBytes } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { hostname, userInfo } from 'node:os'
import { join } from 'node:path'
import { CODES, WarrenError } from '../lib/errors.ts'
import { isIpName, normalizeName } from './match.ts'
import { parseCertPair, type CertPair } from './pair.ts'
import { writeFileAtomic } from './write.ts'

/**
 * The development CA: one ECDSA P-256 root per certs/ directory, created on first use and reused
 * for ever after (users trust it once, with `curl --cacert` or an SDK's `root_cas`). It signs
 * short-lived leaves for any name the edge serves in dev mode.
 */

x509.cryptoProvider.set(globalThis.crypto)

export const DEV_CA_NAME = 'warren development CA'
const CA_YEARS = 10
/** Leaves live 90 days, like ACME certificates, so nothing comes to depend on long-lived ones. */
export const LEAF_DAYS = 90
/** Backdating covers clocks that are a little behind ours (VMs, containers). */
const BACKDATE_MS = 60 * 60 * 1000
const DAY_MS = 24 * 60 * 60 * 1000
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const

export interface DevCa {
  certPath: string
  keyPath: string
  certPem: string
  /** Parsed once for fast checks of cached leaves. */
  cert: NodeX509
  signingKey: CryptoKey
  /** For the authorityKeyIdentifier of leaves. */
  x509: x509.X509Certificate
}

/** Where the CA of `dir` lives (whether or not it exists yet). */
export function devCaPaths(dir: string): { certPath: string; keyPath: string } {
  return { certPath: join(dir, 'dev-ca.pem'), keyPath: join(dir, 'dev-ca.key') }
}

function fail(path: string, message: string): never {
  throw new WarrenError(CODES.CONFIG_INVALID, `Cannot load the development CA "${path}": ${message}`)
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Calls in flight per directory, so two stores starting together create one CA, not two. */
const pending = new Map<string, Promise<{ ca: DevCa; created: boolean }>>()

/**
 * Loads the CA of `dir`, creating it (and `dir`) when neither file exists. A half-present,
 * unreadable, mismatched or expired CA is an error, never silently replaced: users have trusted it.
 *
 * @example
 * const { ca, created } = await loadOrCreateDevCa('./certs')
 */
export function loadOrCreateDevCa(dir: string): Promise<{ ca: DevCa; created: boolean }> {
  let p = pending.get(dir)
  if (!p) {
    p = loadOrCreate(dir).finally(() => pending.delete(dir))
    pending.set(dir, p)
  }
  return p
}

async function loadOrCreate(dir: string): Promise<{ ca: DevCa; created: boolean }> {
  const { certPath, keyPath } = devCaPaths(dir)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const [certPem, keyPem] = await Promise.all([readOptional(certPath), readOptional(keyPath)])
  if (certPem === undefined && keyPem === undefined) return { ca: await createCa(certPath, keyPath), created: true }
  if (certPem === undefined) fail(certPath, `the file is missing but "${keyPath}" exists; restore it, or delete both to create a new CA`)
  if (keyPem === undefined) fail(certPath, `"${keyPath}" is missing; restore it, or delete both to create a new CA`)
  return { ca: await loadCa(certPath, keyPath, certPem, keyPem), created: false }
}

async function createCa(certPath: string, keyPath: string): Promise<DevCa> {
  const keys = (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair
  const now = Date.now()
  const notAfter = new Date(now)
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_YEARS)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [DEV_CA_NAME] }, { O: ['warren'] }, { OU: [owner()] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter,
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  const certPem = cert.toString('pem') + '\n'
  // Key first: a crash between the two writes leaves a key without a cert, which is reported
  // instead of silently replaced, and never a published CA whose key is lost.
  await writeFileAtomic(keyPath, await privateKeyPem(keys.privateKey), { mode: 0o600 })
  await writeFileAtomic(certPath, certPem, { mode: 0o644 })
  return { certPath, keyPath, certPem, cert: new NodeX509(certPem), signingKey: keys.privateKey, x509: cert }
}

async function loadCa(certPath: string, keyPath: string, certPem: string, keyPem: string): Promise<DevCa> {
  let cert: NodeX509
  try {
    cert = new NodeX509(certPem)
  } catch (err) {
    fail(certPath, `the certificate cannot be parsed (${(err as Error).message})`)
  }
  let keyObject
  try {
    keyObject = createPrivateKey(keyPem)
  } catch (err) {
    fail(keyPath, `the private key cannot be parsed (${(err as Error).message})`)
  }
  if (keyObject.asymmetricKeyType !== 'ec' || keyObject.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    fail(keyPath, 'the private key is not ECDSA P-256')
  if (!cert.checkPrivateKey(keyObject)) fail(certPath, `"${keyPath}" is not the key of this certificate`)
  if (!cert.ca) fail(certPath, 'the certificate is not a CA')
  if (cert.validToDate.getTime() <= Date.now())
    fail(certPath, `it expired on ${cert.validToDate.toISOString()}; delete dev-ca.pem and dev-ca.key to create a new one (and trust it again)`)
  const der = keyObject.export({ format: 'der', type: 'pkcs8' })
  const signingKey = await crypto.subtle.importKey('pkcs8', der, EC, false, ['sign'])
  return { certPath, keyPath, certPem, cert, signingKey, x509: new x509.X509Certificate(certPem) }
}

/**
 * Issues a leaf for `names` (DNS names, `*.` patterns or IPs; the first is also the CN): a fresh
 * ECDSA P-256 key, serverAuth, 90 days.
 *
 * @example
 * const pair = await issueLeaf(ca, ['api.warren.localhost'])
 */
export async function issueLeaf(ca: DevCa, names: string[], options: { days?: number } = {}): Promise<CertPair> {
  const sans = [...new Set(names.map(normalizeName))]
  if (sans.length === 0) throw new RangeError('issueLeaf() needs at least one name')
  const keys = (await crypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair
  const now = Date.now()
  const first = sans[0]!
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    // CN is informational only (clients match SANs) and limited to 64 characters.
    subject: first.length <= 64 ? [{ CN: [first] }, { O: ['warren development certificate'] }] : [{ O: ['warren development certificate'] }],
    issuer: ca.x509.subjectName,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + (options.days ?? LEAF_DAYS) * DAY_MS),
    publicKey: keys.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sans.map((n) => ({ type: isIpName(n) ? 'ip' : 'dns', value: n }))),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.x509.publicKey),
    ],
  })
  return parseCertPair(cert.toString('pem') + '\n', await privateKeyPem(keys.privateKey), 'dev')
}

/** Whether `certPem` (a leaf) was signed by this CA. */
export function issuedBy(ca: DevCa, leaf: NodeX509): boolean {
  return leaf.checkIssued(ca.cert) && leaf.verify(ca.cert.publicKey)
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key)
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n'
}

/** A positive 128-bit serial (the top bit clear keeps the DER INTEGER positive). */
function serialNumber(): string {
  const bytes = randomBytes(16)
  bytes[0] = bytes[0]! & 0x7f || 1 // non-zero too: a leading 0x00 byte would not be minimal DER
  return bytes.toString('hex')
}

/** `user@host` in the CA's OU, so a trust store holding several warren CAs can tell them apart. */
function owner(): string {
  let user = process.env.USER ?? process.env.USERNAME
  try {
    user ??= userInfo().username
  } catch {}
  return `${user ?? 'unknown'}@${hostname()}`
}
