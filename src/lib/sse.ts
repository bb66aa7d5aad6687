import { CODES, WarrenError } from './errors.ts'

/*
 * The `text/event-stream` format (WHATWG HTML §9.2.6) read the way a browser's EventSource reads it,
 * for an edge that rewrites messages on the way and must leave everything else as it was: a message
 * nobody changed goes out with its original text (comments, unknown fields, line ends), a changed
 * one is written again from its lines.
 */

/** One line of a message: a field (`data: x` → name `data`, value `x`) or a comment (`: x`, name null). */
export interface EventStreamLine {
  name: string | null
  value: string
  /** The line as received, without its line end. */
  raw: string
}

/** One message: the lines up to a blank line. */
export interface EventStreamMessage {
  lines: EventStreamLine[]
  /** The message exactly as received, line ends and closing blank line included. */
  raw: string
  /** The line end the message's first line used (`\n`, `\r\n` or `\r`): a rewritten message uses it throughout. */
  eol: string
  /** What ended the message: the blank line's line end, or `''` for text the stream ended in the middle of. */
  end: string
  /** Set by whoever changes `lines`: the message is then written from `lines` instead of `raw`. */
  changed: boolean
}

/** What the parser hands on, in stream order: text to pass as it is (blank lines between messages), or a message. */
export type EventStreamItem = string | EventStreamMessage

/** A message may grow to this many characters before its blank line; beyond it the stream is refused (ERR_WARREN_2120). */
export const MAX_MESSAGE_CHARS = 1024 * 1024

/** Splits one line into field name and value as EventSource does (one space after the colon is not part of the value). */
export function parseLine(raw: string): EventStreamLine {
  const colon = raw.indexOf(':')
  if (colon === 0) return { name: null, value: raw.slice(1), raw }
  if (colon === -1) return { name: raw, value: '', raw }
  const value = raw.slice(colon + 1)
  return { name: raw.slice(0, colon), value: value.startsWith(' ') ? value.slice(1) : value, raw }
}

/** The message's data as EventSource delivers it: its `data` values joined by `\n`; undefined without a data field. */
export function messageData(message: EventStreamMessage): string | undefined {
  const values = message.lines.filter((l) => l.name === 'data').map((l) => l.value)
  return values.length ? values.join('\n') : undefined
}

/**
 * Replaces the message's data: one `data:` line per line of `data`, where its first data line was.
 * A line break in `data` can only be written as another data line, so nothing can start a new field.
 */
export function setMessageData(message: EventStreamMessage, data: string): void {
  const first = message.lines.findIndex((l) => l.name === 'data')
  const lines = data.split(/\r\n|\r|\n/).map((value) => ({ name: 'data', value, raw: `data: ${value}` }))
  const kept = message.lines.filter((l) => l.name !== 'data')
  kept.splice(first === -1 ? kept.length : first, 0, ...lines)
  message.lines = kept
  message.changed = true
}

/** Replaces the value of one line; line breaks are dropped so the value stays one line. */
export function setLineValue(message: EventStreamMessage, line: EventStreamLine, value: string): void {
  const one = value.replace(/[\r\n]/g, '')
  line.value = one
  line.raw = `${line.name ?? ''}: ${one}`
  message.changed = true
}

/** The text to send for `message`: as received, or its lines written out with the message's line end. */
export function serializeMessage(message: EventStreamMessage): string {
  if (!message.changed) return message.raw
  // The stream ended inside the last line: it stays unterminated, as it came.
  const partial = message.end === '' && !/[\r\n]$/.test(message.raw)
  let out = ''
  message.lines.forEach((line, i) => {
    out += line.raw
    if (!partial || i < message.lines.length - 1) out += message.eol
  })
  return out + message.end
}

/**
 * An incremental parser: `push` takes decoded text as it arrives (chunks may cut lines, and a CR
 * and its LF, anywhere) and returns every message completed so far; `end` returns what the stream
 * ended in the middle of. Nothing beyond the current message is held.
 */
export function createEventStreamParser() {
  /** Text after the last line end. */
  let rest = ''
  let lines: EventStreamLine[] = []
  let raw = ''
  let eol = ''
  /** The last text seen ended with CR: an LF first in the next push belongs to that line end. */
  let afterCr = false

  function take(line: string, end: string, out: EventStreamItem[]): void {
    if (line === '') {
      if (lines.length === 0) out.push(end)
      else {
        out.push({ lines, raw: raw + end, eol, end, changed: false })
        lines = []
        raw = ''
      }
      return
    }
    if (lines.length === 0) eol = end
    lines.push(parseLine(line))
    raw += line + end
  }

  function push(text: string): EventStreamItem[] {
    const out: EventStreamItem[] = []
    if (afterCr && text !== '') {
      afterCr = false
      if (text.startsWith('\n')) {
        // The CR ended a line of the current message, or the blank line of one already passed on.
        if (lines.length) {
          raw += '\n'
          if (lines.length === 1) eol = '\r\n'
        } else out.push('\n')
        text = text.slice(1)
      }
    }
    // Only the new text is scanned: a long line arriving in small chunks costs its length once.
    let start = 0
    for (;;) {
      let i = start
      while (i < text.length && text.charCodeAt(i) !== 10 && text.charCodeAt(i) !== 13) i++
      if (i === text.length) break
      let end = text[i]!
      if (end === '\r') {
        if (i + 1 < text.length) {
          if (text[i + 1] === '\n') end = '\r\n'
        } else afterCr = true
      }
      take(rest + text.slice(start, i), end, out)
      rest = ''
      start = i + end.length
    }
    rest += text.slice(start)
    if (raw.length + rest.length > MAX_MESSAGE_CHARS)
      throw new WarrenError(CODES.EVENT_STREAM_MESSAGE_TOO_LARGE, `An event-stream message grew past ${MAX_MESSAGE_CHARS} characters without ending`)
    return out
  }

  function end(): EventStreamMessage | undefined {
    if (rest !== '') {
      if (lines.length === 0) eol = ''
      lines.push(parseLine(rest))
      raw += rest
      rest = ''
    }
    if (lines.length === 0) return undefined
    const message = { lines, raw, eol: eol || '\n', end: '', changed: false }
    lines = []
    raw = ''
    return message
  }

  return { push, end }
}
