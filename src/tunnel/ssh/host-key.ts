import { createHash } from 'node:crypto'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { utils } from 'ssh2'
import { writeFileAtomic } from '../../certs/write.ts'
import { CODES, WarrenError } from '../../lib/errors.ts'

/** Where the host key lives under certs/ (a subfolder: the certificate loader reads only files at the top). */
export const HOST_KEY_FILE = join('ssh', 'host_ed25519_key')

export interface HostKey {
  /** OpenSSH private key text, for ssh2's `hostKeys`. */
  privateKey: string
  /** `SHA256:…` as OpenSSH prints it when it asks to trust the host. */
  fingerprint: string
  /** True when this start created the key. */
  created: boolean
}

/** OpenSSH's fingerprint of a public-key blob: `SHA256:` and unpadded base64. */
export function fingerprintOf(publicKeyBlob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`
}

/**
 * Reads the SSH host key from `<certs>/ssh/host_ed25519_key`, creating it on first start (ed25519,
 * mode 0600), so clients see the same host key across restarts.
 */
export async function loadHostKey(certsDir: string): Promise<HostKey> {
  const path = join(certsDir, HOST_KEY_FILE)
  let text: string | undefined
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new WarrenError(CODES.SSH_HOST_KEY, `Cannot read the SSH host key "${path}": ${(err as Error).message}`)
  }
  const created = text === undefined
  if (text === undefined) {
    text = utils.generateKeyPairSync('ed25519', {}).private
    try {
      await mkdir(join(certsDir, 'ssh'), { recursive: true, mode: 0o700 })
      await writeFileAtomic(path, text, { mode: 0o600 })
    } catch (err) {
      throw new WarrenError(CODES.SSH_HOST_KEY, `Cannot write the SSH host key "${path}": ${(err as Error).message}`)
    }
  }
  const parsed = utils.parseKey(text)
  const key = Array.isArray(parsed) ? parsed[0] : parsed
  if (!key || key instanceof Error) throw new WarrenError(CODES.SSH_HOST_KEY, `Cannot load the SSH host key "${path}": ${key instanceof Error ? key.message : 'no key in the file'}`)
  return { privateKey: text, fingerprint: fingerprintOf(key.getPublicSSH()), created }
}
