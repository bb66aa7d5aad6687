import type { CaptureStore, Exchange } from '../inspect/capture.ts'
import type { ConnectionDone } from './forward.ts'

/** What the dashboard shows; read again on every redraw. */
export interface DashboardSource {
  status(): 'online' | 'reconnecting' | 'connecting'
  account(): string | undefined
  version: string
  server: string
  latencyMs(): number | undefined
  webInterface(): string | undefined
  forwarding(): { url: string; upstream: string }[]
  /** Connections proxied so far, and open now. */
  connections(): { total: number; open: number }
}

const LABEL = 30
/** Most finished connections kept for the rates and percentiles. */
const KEEP = 1000

function row(label: string, value: string): string {
  return label.padEnd(LABEL) + value
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

function num(n: number): string {
  return n.toFixed(2).padEnd(8)
}

/**
 * The terminal dashboard shown when stdout is a TTY (as ngrok's console UI): session status,
 * account, version, latency, the web interface, one `Forwarding` line per endpoint, connection
 * counters with rates (per second over 1 and 5 minutes) and duration percentiles (seconds), and the
 * last HTTP requests. `render()` is pure; `start()` redraws it every second on the alternate screen.
 */
export class Dashboard {
  readonly #source: DashboardSource
  readonly #write: (text: string) => void
  readonly #done: { endedAt: number; seconds: number }[] = []
  readonly #requests: Exchange[] = []
  #timer: ReturnType<typeof setInterval> | undefined
  #unsubscribe: (() => void) | undefined

  constructor(source: DashboardSource, options: { write?: (text: string) => void; capture?: CaptureStore | undefined } = {}) {
    this.#source = source
    this.#write = options.write ?? ((t) => void process.stdout.write(t))
    this.#unsubscribe = options.capture?.subscribe((e) => {
      if (e.durationMs === undefined || this.#requests.includes(e)) return
      this.#requests.unshift(e)
      this.#requests.length = Math.min(this.#requests.length, 10)
    })
  }

  /** A connection ended (feeds rt1, rt5, p50, p90). */
  connectionDone(done: ConnectionDone): void {
    this.#done.push({ endedAt: done.endedAt, seconds: (done.endedAt - done.startedAt) / 1000 })
    if (this.#done.length > KEEP) this.#done.shift()
  }

  render(now = Date.now(), columns = 100): string {
    const s = this.#source
    const latency = s.latencyMs()
    const lines = [
      'warren'.padEnd(Math.max(LABEL, columns - 20)) + '(Ctrl+C to quit)',
      '',
      row('Session Status', s.status()),
      row('Account', s.account() ?? '-'),
      row('Version', s.version),
      row('Server', s.server),
      row('Latency', latency === undefined ? '-' : `${latency}ms`),
    ]
    const web = s.webInterface()
    if (web) lines.push(row('Web Interface', web))
    for (const f of s.forwarding()) lines.push(row('Forwarding', `${f.url} -> ${f.upstream}`))
    const { total, open } = s.connections()
    const rt1 = this.#done.filter((d) => now - d.endedAt <= 60_000).length / 60
    const rt5 = this.#done.filter((d) => now - d.endedAt <= 300_000).length / 300
    const sorted = this.#done.map((d) => d.seconds).sort((a, b) => a - b)
    lines.push(
      '',
      row('Connections', ['ttl', 'opn', 'rt1', 'rt5', 'p50', 'p90'].map((h) => h.padEnd(8)).join('')),
      row('', `${String(total).padEnd(8)}${String(open).padEnd(8)}${num(rt1)}${num(rt5)}${num(percentile(sorted, 50))}${num(percentile(sorted, 90))}`.trimEnd()),
    )
    if (this.#requests.length) {
      lines.push('', 'HTTP Requests', '-------------', '')
      for (const e of this.#requests) {
        const target = `${e.request.method} ${e.request.uri}`
        const status = e.response ? `${e.response.status} ${e.response.statusText}` : (e.error ?? '')
        lines.push(`${target.length >= LABEL ? target.slice(0, LABEL - 2) + '… ' : target.padEnd(LABEL)}${status}`)
      }
    }
    return lines.map((l) => (l.length > columns ? l.slice(0, columns) : l)).join('\n')
  }

  start(): void {
    // Alternate screen, hidden cursor; restored by stop().
    this.#write('\x1b[?1049h\x1b[?25l')
    const draw = () => this.#write(`\x1b[H\x1b[2J${this.render(Date.now(), process.stdout.columns || 100)}`)
    draw()
    this.#timer = setInterval(draw, 1000)
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#unsubscribe?.()
    if (this.#timer) this.#write('\x1b[?25h\x1b[?1049l')
    this.#timer = undefined
  }
}
