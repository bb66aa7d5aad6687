import type { Endpoint } from './endpoint.ts'
import type { EndpointStatus, FileStatus } from './status.ts'
import { EndpointTable, type Rejection } from './table.ts'

/**
 * Holds the current endpoint table: cloud endpoints from policies/ plus agent endpoints from tunnel
 * sessions. Readers take `current` once per request and keep that snapshot; every change builds a
 * new table and swaps it in one assignment.
 */
export class EndpointStore {
  #table: EndpointTable = EndpointTable.EMPTY
  #cloud: EndpointTable = EndpointTable.EMPTY
  #agents: readonly Endpoint[] = []
  #files: FileStatus[] = []
  #endpoints: EndpointStatus[] = []
  #version = 0
  readonly #listeners = new Set<(table: EndpointTable) => void>()

  get current(): EndpointTable {
    return this.#table
  }

  get status(): { files: readonly FileStatus[]; endpoints: readonly EndpointStatus[] } {
    return { files: this.#files, endpoints: this.#endpoints }
  }

  /** Cloud endpoints changed (a policies reload). */
  swap(table: EndpointTable, status: { files: FileStatus[]; endpoints: EndpointStatus[] }): void {
    this.#cloud = table
    this.#files = status.files
    this.#endpoints = status.endpoints
    this.#rebuild()
  }

  /** Agent endpoints changed (bind, unbind, session end). Returns the ones that could not join. */
  setAgentEndpoints(endpoints: readonly Endpoint[]): Rejection[] {
    this.#agents = endpoints
    return this.#rebuild()
  }

  /** Called after every swap (listeners that follow the table: tcp ports…). */
  onChange(listener: (table: EndpointTable) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #rebuild(): Rejection[] {
    let rejected: Rejection[] = []
    if (this.#agents.length === 0) this.#table = this.#cloud
    else {
      // Cloud endpoints first: an agent cannot take over a URL a policies file serves.
      const built = EndpointTable.build(this.#cloud.version * 1_000_000 + ++this.#version, [...this.#cloud.endpoints, ...this.#agents])
      this.#table = built.table
      rejected = built.rejected
    }
    for (const listener of this.#listeners) listener(this.#table)
    return rejected
  }
}
