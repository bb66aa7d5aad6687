/**
 * A small Prometheus client: counters, gauges and histograms with labels, rendered in the text
 * exposition format (version 0.0.4). Updating a metric is a map lookup and an addition, so the data
 * path can afford it.
 */

export type Labels = Readonly<Record<string, string>>

/** `\`, `"` and newlines escaped, as the exposition format wants label values. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function labelText(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`)
  if (extra) parts.push(extra)
  return parts.length ? `{${parts.join(',')}}` : ''
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN'
  if (n === Infinity) return '+Inf'
  if (n === -Infinity) return '-Inf'
  return String(n)
}

interface Metric {
  readonly name: string
  render(): string
}

abstract class Family<T> implements Metric {
  readonly name: string
  readonly #help: string
  readonly #type: string
  protected readonly labelNames: readonly string[]
  protected readonly series = new Map<string, { values: string[]; state: T }>()

  constructor(name: string, help: string, type: string, labelNames: readonly string[]) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) throw new TypeError(`invalid metric name "${name}"`)
    this.name = name
    this.#help = help
    this.#type = type
    this.labelNames = labelNames
  }

  protected abstract fresh(): T
  protected abstract lines(labels: string[], state: T): string[]

  protected at(labels: Labels): T {
    // Runs for every request: the key is built without an array, which is made only for a new series.
    const names = this.labelNames
    let key = names.length ? (labels[names[0]!] ?? '') : ''
    for (let i = 1; i < names.length; i++) key += '\u0000' + (labels[names[i]!] ?? '')
    let entry = this.series.get(key)
    if (!entry) this.series.set(key, (entry = { values: names.map((n) => labels[n] ?? ''), state: this.fresh() }))
    return entry.state
  }

  /**
   * The state of the series for `labels`, looked up once by a hot path that knows its labels ahead:
   * a counter's is `{ value }` to add to, a histogram's goes to `record`.
   */
  child(labels: Labels): T {
    return this.at(labels)
  }

  /** Forgets every series (gauges recomputed at scrape time). */
  reset(): void {
    this.series.clear()
  }

  render(): string {
    const out = [`# HELP ${this.name} ${escapeHelp(this.#help)}`, `# TYPE ${this.name} ${this.#type}`]
    for (const { values, state } of this.series.values()) out.push(...this.lines(values, state))
    return out.join('\n')
  }
}

export class Counter extends Family<{ value: number }> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, 'counter', labelNames)
  }
  protected fresh() {
    return { value: 0 }
  }
  protected lines(values: string[], state: { value: number }) {
    return [`${this.name}${labelText(this.labelNames, values)} ${formatNumber(state.value)}`]
  }
  inc(labels: Labels = {}, by = 1): void {
    this.at(labels).value += by
  }
  get(labels: Labels = {}): number {
    return this.at(labels).value
  }
  /** For counts kept elsewhere (a sink's drops): copies the current total in at scrape time. */
  set(labels: Labels, total: number): void {
    this.at(labels).value = total
  }
}

export class Gauge extends Family<{ value: number }> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, 'gauge', labelNames)
  }
  protected fresh() {
    return { value: 0 }
  }
  protected lines(values: string[], state: { value: number }) {
    return [`${this.name}${labelText(this.labelNames, values)} ${formatNumber(state.value)}`]
  }
  set(labels: Labels, value: number): void {
    this.at(labels).value = value
  }
}

export interface HistogramState {
  counts: number[]
  sum: number
  count: number
}

export class Histogram extends Family<HistogramState> {
  readonly #buckets: readonly number[]

  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(name, help, 'histogram', labelNames)
    this.#buckets = [...buckets].sort((a, b) => a - b)
  }
  protected fresh(): HistogramState {
    return { counts: this.#buckets.map(() => 0), sum: 0, count: 0 }
  }
  protected lines(values: string[], state: HistogramState) {
    const out: string[] = []
    // Buckets are stored per bucket and rendered cumulatively, as the format requires.
    let cumulative = 0
    this.#buckets.forEach((le, i) => {
      cumulative += state.counts[i]!
      out.push(`${this.name}_bucket${labelText(this.labelNames, values, `le="${formatNumber(le)}"`)} ${cumulative}`)
    })
    out.push(`${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${state.count}`)
    out.push(`${this.name}_sum${labelText(this.labelNames, values)} ${formatNumber(state.sum)}`)
    out.push(`${this.name}_count${labelText(this.labelNames, values)} ${state.count}`)
    return out
  }
  observe(labels: Labels, value: number): void {
    this.record(this.at(labels), value)
  }
  /** Observes `value` in a series of this histogram. */
  record(state: HistogramState, value: number): void {
    const buckets = this.#buckets
    for (let i = 0; i < buckets.length; i++) {
      if (value > buckets[i]!) continue
      state.counts[i]!++
      break
    }
    state.sum += value
    state.count++
  }
}

/** A set of metrics rendered together; `collect` hooks refresh scrape-time gauges first. */
export class Registry {
  readonly #metrics: Metric[] = []
  readonly #collectors: (() => void)[] = []

  add<M extends Metric>(metric: M): M {
    if (this.#metrics.some((m) => m.name === metric.name)) throw new TypeError(`metric "${metric.name}" registered twice`)
    this.#metrics.push(metric)
    return metric
  }

  /** Runs before every render (e.g. to read the number of open sessions). */
  collect(collector: () => void): void {
    this.#collectors.push(collector)
  }

  render(): string {
    for (const c of this.#collectors) c()
    return this.#metrics.map((m) => m.render()).join('\n') + '\n'
  }
}

/** The content type of the text exposition format. */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
