import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { Logger } from '../../lib/log.ts'
import type { WarrenEvent } from '../types.ts'

export interface FileSinkOptions {
  path: string
  /** Rotate once the file would grow past this many bytes. */
  maxBytes: number
  /** Rotated copies kept: `<path>.1` (newest) … `<path>.<maxFiles>`. */
  maxFiles: number
  /** Bytes waiting for the disk; beyond it events are dropped and counted. */
  bufferBytes: number
  log: Logger
}

/**
 * Appends events as JSON lines to a file and rotates it by size. Writes are asynchronous and one at
 * a time; what arrives meanwhile waits in a bounded buffer.
 */
export class FileSink {
  readonly #o: FileSinkOptions
  #pending: string[] = []
  #pendingBytes = 0
  #writing: Promise<void> | undefined
  #handle: FileHandle | undefined
  #size = 0
  #dropped = 0
  #written = 0
  #failing = false

  constructor(options: FileSinkOptions) {
    this.#o = options
    mkdirSync(dirname(options.path), { recursive: true })
    // Fail at start, not at the first event, when the file cannot be written.
    closeSync(openSync(options.path, 'a'))
    this.#size = statSync(options.path).size
  }

  get dropped(): number {
    return this.#dropped
  }

  get written(): number {
    return this.#written
  }

  accept(batch: readonly WarrenEvent[]): void {
    for (const event of batch) {
      const line = JSON.stringify(event) + '\n'
      const bytes = Buffer.byteLength(line)
      if (this.#pendingBytes + bytes > this.#o.bufferBytes) {
        this.#dropped++
        continue
      }
      this.#pending.push(line)
      this.#pendingBytes += bytes
    }
    this.#writing ??= this.#drain().finally(() => (this.#writing = undefined))
  }

  /** Resolves once everything accepted so far is on disk (or dropped). */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing
  }

  async close(): Promise<void> {
    await this.flush()
    await this.#handle?.close()
    this.#handle = undefined
  }

  async #drain(): Promise<void> {
    while (this.#pending.length) {
      const lines = this.#pending
      this.#pending = []
      this.#pendingBytes = 0
      let chunk = ''
      let chunkBytes = 0
      let count = 0
      for (const line of lines) {
        const bytes = Buffer.byteLength(line)
        if (this.#size + chunkBytes + bytes > this.#o.maxBytes && this.#size + chunkBytes > 0) {
          await this.#write(chunk, chunkBytes, count)
          chunk = ''
          chunkBytes = 0
          count = 0
          await this.#rotate()
        }
        chunk += line
        chunkBytes += bytes
        count++
      }
      await this.#write(chunk, chunkBytes, count)
    }
  }

  async #write(chunk: string, bytes: number, count: number): Promise<void> {
    if (!chunk) return
    try {
      this.#handle ??= await open(this.#o.path, 'a')
      await this.#handle.write(chunk)
      this.#size += bytes
      this.#written += count
      if (this.#failing) this.#o.log.info('event file writable again', { path: this.#o.path })
      this.#failing = false
    } catch (err) {
      this.#dropped += count
      if (!this.#failing) this.#o.log.error('cannot write the event file; events are dropped', { path: this.#o.path, error: (err as Error).message })
      this.#failing = true
      await this.#handle?.close().catch(() => {})
      this.#handle = undefined
    }
  }

  /** `<path>` → `<path>.1` → … → `<path>.<maxFiles>`; the oldest falls off. */
  async #rotate(): Promise<void> {
    await this.#handle?.close().catch(() => {})
    this.#handle = undefined
    const { path, maxFiles } = this.#o
    try {
      if (maxFiles === 0) rmSync(path, { force: true })
      else {
        rmSync(`${path}.${maxFiles}`, { force: true })
        for (let i = maxFiles - 1; i >= 1; i--) if (existsSync(`${path}.${i}`)) renameSync(`${path}.${i}`, `${path}.${i + 1}`)
        renameSync(path, `${path}.1`)
      }
    } catch (err) {
      this.#o.log.error('cannot rotate the event file', { path, error: (err as Error).message })
    }
    this.#size = 0
  }
}
