import { randomBytes } from 'node:crypto'
import { open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/**
 * Writes `data` to `path` so that readers see the old file or the whole new one, never a part:
 * write a hidden temp file beside it (created with `mode`, flushed to disk), then rename it over.
 * The temp name starts with `.` so the certs/ watcher ignores it.
 */
export async function writeFileAtomic(path: string, data: string, options: { mode: number }): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    const file = await open(temp, 'wx', options.mode)
    try {
      await file.writeFile(data)
      await file.sync()
    } finally {
      await file.close()
    }
    await rename(temp, path)
  } catch (err) {
    await unlink(temp).catch(() => {})
    throw err
  }
}
