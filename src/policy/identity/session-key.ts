import { randomBytes } from 'node:crypto'
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CODES, WarrenError } from '../../lib/errors.ts'

/** Under certs/, in a subfolder: the certificate loader reads only the files at the top. */
export const SESSION_KEY_FILE = join('identity', 'session.key')

const KEY_BYTES = 32

function parse(text: string, path: string): Uint8Array {
  const key = Buffer.from(text.trim(), 'base64url')
  if (key.length !== KEY_BYTES) throw new WarrenError(CODES.IDENTITY_SESSION_KEY, `The session key "${path}" is not ${KEY_BYTES} bytes of base64url; delete it to make a new one (signs everyone out)`)
  return new Uint8Array(key)
}

/**
 * The edge's secret for the oauth/openid-connect session cookies (`<certs>/identity/session.key`,
 * 32 random bytes, mode 0600), created on first start so restarts keep everyone signed in.
 * Several workers may start at once: the first file linked into place wins and every one reads it.
 */
export async function loadSessionKey(certsDir: string): Promise<Uint8Array> {
  const path = join(certsDir, SESSION_KEY_FILE)
  try {
    return parse(await readFile(path, 'utf8'), path)
  } catch (err) {
    if (err instanceof WarrenError) throw err
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new WarrenError(CODES.IDENTITY_SESSION_KEY, `Cannot read the session key "${path}": ${(err as Error).message}`)
  }
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`
  try {
    await mkdir(join(certsDir, 'identity'), { recursive: true, mode: 0o700 })
    await writeFile(temp, `${randomBytes(KEY_BYTES).toString('base64url')}\n`, { mode: 0o600 })
    // link() fails when another process got there first; its key is the one everybody uses.
    await link(temp, path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err
    })
    return parse(await readFile(path, 'utf8'), path)
  } catch (err) {
    if (err instanceof WarrenError) throw err
    throw new WarrenError(CODES.IDENTITY_SESSION_KEY, `Cannot create the session key "${path}": ${(err as Error).message}`)
  } finally {
    await unlink(temp).catch(() => undefined)
  }
}
