import type { ReloadResult } from '../config/policies.ts'
import { makeEvent, type ConfigReloadEvent } from './types.ts'

/** `config_reload.v0` for one reload of the policies directory. */
export function reloadEvent(reason: string, result: ReloadResult): ConfigReloadEvent {
  const errors = result.files.flatMap((f) => f.issues.map((i) => ({ file: i.file, line: i.line, col: i.col, code: i.code, message: i.message })))
  for (const r of result.rejected)
    errors.push({ file: r.endpoint.source, line: r.endpoint.position.line, col: r.endpoint.position.col, code: r.code, message: r.message })
  return makeEvent('config_reload.v0', {
    reason,
    version: result.table.version,
    ok: errors.length === 0,
    endpoints: result.table.endpoints.length,
    changed: [...result.changed],
    errors,
  })
}
