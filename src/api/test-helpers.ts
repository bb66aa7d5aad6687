import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PolicyDirectory } from '../config/policies.ts'
import { EndpointStore } from '../endpoints/store.ts'
import { createApp } from './app.ts'

/** Shared by the API unit tests: a temp policies directory, a store, and the app over both. */
export const LOAD_OPTIONS = { defaultPorts: { http: 8080, https: 8443, tls: 8443, tcp: 0 }, defaultAccount: 'default' }
export const KEY = 'test-key-1'

export function respondPolicy(body: string): string {
  return `on_http_request:\n  - actions:\n      - type: custom-response\n        config: {body: "${body}"}\n`
}

/** A Response whose JSON the tests read field by field. */
export type JsonResponse = Omit<Response, 'json'> & { json(): Promise<any> }

export function setup(options: { apiKeys?: string[]; files?: Record<string, string>; load?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'warren-api-'))
  for (const [name, text] of Object.entries(options.files ?? {})) writeFileSync(join(dir, name), text)
  const store = new EndpointStore()
  const policies = new PolicyDirectory(dir, LOAD_OPTIONS)
  const reasons: string[] = []
  const reload = (reason: string) => {
    reasons.push(reason)
    const result = policies.reload()
    store.swap(result.table, result)
  }
  if (options.load !== false) reload('start')
  const app = createApp({ apiKeys: options.apiKeys ?? [KEY], store, policiesDir: dir, loadOptions: LOAD_OPTIONS, reload })
  const call = (method: string, path: string, body?: unknown, key: string | null = KEY): Promise<JsonResponse> => {
    const headers: Record<string, string> = {}
    if (key !== null) headers.authorization = `Bearer ${key}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    const init: RequestInit = { method, headers }
    if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body)
    return Promise.resolve(app.request(`http://127.0.0.1:4041${path}`, init))
  }
  return { dir, store, app, call, reload, reasons, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}
