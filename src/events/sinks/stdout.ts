import type { WarrenEvent } from '../types.ts'

/**
 * Writes each event as one JSON line. Lines of a batch go out in one write, after the request that
 * produced them has been answered.
 */
export function stdoutSink(write: (text: string) => void = (text) => void process.stdout.write(text)) {
  return function stdoutSink(batch: readonly WarrenEvent[]): void {
    let text = ''
    for (const event of batch) text += JSON.stringify(event) + '\n'
    if (text) write(text)
  }
}
