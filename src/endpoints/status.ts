import type { FileIssue } from '../config/document.ts'

/** Load status of one policies file (what `warren policy check` and the API report). */
export interface FileStatus {
  file: string
  status: 'ok' | 'error'
  issues: FileIssue[]
  /** True when the file is broken now but its last good endpoints keep serving. */
  servingPrevious: boolean
}

/** Status of one declared endpoint. */
export interface EndpointStatus {
  id: string
  url: string
  binding: string
  account: string
  source: string
  status: 'enabled' | 'error'
  errors: string[]
}
