import type { ErrorCode } from '../lib/errors.ts'

export type IssuePath = readonly (string | number)[]

/** A problem in a config document, located by its key path (turned into file:line:col by the loader). */
export interface ConfigIssue {
  code: ErrorCode
  path: IssuePath
  message: string
}

/** Thrown by policy compilation with every problem found; the loader adds file positions. */
export class ConfigIssues extends Error {
  readonly issues: ConfigIssue[]
  constructor(issues: ConfigIssue[]) {
    super(issues.map((i) => i.message).join('; '))
    this.name = 'ConfigIssues'
    this.issues = issues
  }
}
