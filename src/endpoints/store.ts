import type { EndpointStatus, FileStatus } from './status.ts'
import { EndpointTable } from './table.ts'

/** Holds the current endpoint table; readers take `current` once per request and keep that snapshot. */
export class EndpointStore {
  #table: EndpointTable = EndpointTable.EMPTY
  #files: FileStatus[] = []
  #endpoints: EndpointStatus[] = []

  get current(): EndpointTable {
    return this.#table
  }

  get status(): { files: readonly FileStatus[]; endpoints: readonly EndpointStatus[] } {
    return { files: this.#files, endpoints: this.#endpoints }
  }

  /** Swaps in a new table in one assignment: requests already running keep the old one. */
  swap(table: EndpointTable, status: { files: FileStatus[]; endpoints: EndpointStatus[] }): void {
    this.#table = table
    this.#files = status.files
    this.#endpoints = status.endpoints
  }
}
