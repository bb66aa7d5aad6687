import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { curl } from './framework/curl.ts'
import { eventually, startEdge, WARREN_BIN, type Edge } from './framework/process.ts'

const KEY = 'e2e-api-key'
const CONFIG = `api_keys: ["sha256:${createHash('sha256').update(KEY).digest('hex')}"]\n`
const HOST = 'made-by-api.warren.localhost'

let dir: string
let policies: string
let edge: Edge | undefined

/** Starts the edge on a policies directory that outlives it, so a restart sees the same files. */
async function start(config = CONFIG): Promise<Edge> {
  // A later --policies wins over the framework's own temp directory.
  const e = await startEdge({ config, args: ['--policies', policies] })
  const up = await eventually(async () => (await fetch(`http://127.0.0.1:${e.apiPort}/readyz`)).status === 200, 5000)
  if (!up) throw new Error(`the API did not become ready on ${e.apiPort}; logs:\n${e.logs()}`)
  return e
}

/** Runs `warren api …` through a shell, as a user would (so `"$(<file)"` works). */
function warrenApi(command: string, env: Record<string, string> = { WARREN_API_KEY: KEY }): { code: number; json: any; out: string; err: string } {
  const proc = Bun.spawnSync(['bash', '-c', `"$WARREN" api ${command} --api-url http://127.0.0.1:${edge!.apiPort}`], { cwd: dir, env: { PATH: process.env.PATH ?? '', WARREN: WARREN_BIN, ...env } })
  const out = proc.stdout.toString()
  const err = proc.stderr.toString()
  let json: unknown
  try {
    json = JSON.parse(out || err)
  } catch {}
  return { code: proc.exitCode ?? -1, json, out, err }
}

const get = (edgeNow: Edge, host = HOST) => curl(['-H', `Host: ${host}`, `${edgeNow.base}/hello`])

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warren-e2e-api-'))
  policies = join(dir, 'policies')
  mkdirSync(policies)
  writeFileSync(join(policies, 'hand.yml'), 'url: http://hand.warren.localhost\ntraffic_policy:\n  on_http_request:\n    - actions: [{type: custom-response, config: {body: hand}}]\n')
  writeFileSync(join(dir, 'policy.yml'), 'on_http_request:\n  - actions:\n      - type: custom-response\n        config: {body: "from the API ${req.url.path}"}\n')
  edge = await start()
})
afterAll(async () => {
  await edge?.stop()
  rmSync(dir, { recursive: true, force: true })
})

describe('REST API + warren api (compiled binary)', () => {
  let id: string

  test('warren api endpoints create, then the endpoint answers through the edge', async () => {
    const r = warrenApi(`endpoints create --url http://${HOST} --traffic-policy "$(<policy.yml)" --description "e2e" --metadata '{"by":"test"}'`)
    expect(r.code).toBe(0)
    // The URL is shown as a client must use it: the edge listens on a port that is not 80.
    expect(r.json).toMatchObject({ url: `http://${HOST}:${edge!.httpPort}`, type: 'cloud', bindings: ['public'], description: 'e2e', metadata: '{"by":"test"}', read_only: false })
    id = r.json.id
    expect(readdirSync(policies).sort()).toEqual([`api-${id}.yml`, 'hand.yml'])
    // The answer came after the reload: no waiting for the watcher.
    const res = await get(edge!)
    expect(res.status).toBe(200)
    expect(res.body).toBe('from the API /hello')
  })

  test('list, get and status show it; hand-written endpoints are read-only', () => {
    const list = warrenApi(`endpoints list --url http://${HOST}`)
    expect(list.code).toBe(0)
    expect(list.json.endpoints.map((e: { id: string }) => e.id)).toEqual([id])
    // The URL as shown (with the port) finds it as well.
    expect(warrenApi(`endpoints list --url http://${HOST}:${edge!.httpPort}`).json.endpoints.map((e: { id: string }) => e.id)).toEqual([id])
    const all = warrenApi('endpoints list')
    expect(all.json.endpoints.find((e: { source: string }) => e.source === 'hand.yml')).toMatchObject({ read_only: true })
    expect(warrenApi(`endpoints get ${id}`).json).toMatchObject({ id, url: `http://${HOST}:${edge!.httpPort}` })
    const status = warrenApi('status')
    expect(status.json).toMatchObject({ ready: true })
    expect(status.json.files).toContainEqual({ file: `api-${id}.yml`, status: 'ok', issues: [], servingPrevious: false })
  })

  test('a wrong key and a missing key are refused with JSON errors and exit 1', () => {
    const wrong = warrenApi('endpoints list', { WARREN_API_KEY: 'nope' })
    expect(wrong.code).toBe(1)
    expect(wrong.json).toMatchObject({ error_code: 'ERR_WARREN_6001', status_code: 401, msg: 'Invalid API key' })
    const missing = warrenApi('status', {})
    expect(missing.code).toBe(1)
    expect(missing.json.error_code).toBe('ERR_WARREN_6001')
  })

  test('an invalid URL is refused with a message naming the field; a hand-written endpoint cannot be deleted', () => {
    const bad = warrenApi(`endpoints create --url ftp://x.warren.localhost --traffic-policy "$(<policy.yml)"`)
    expect(bad.code).toBe(1)
    expect(bad.json).toMatchObject({ error_code: 'ERR_WARREN_6005', status_code: 400 })
    expect(bad.json.msg).toStartWith('url: Invalid endpoint URL "ftp://x.warren.localhost"')
    const hand = warrenApi('endpoints list --url http://hand.warren.localhost').json.endpoints[0]
    const del = warrenApi(`endpoints delete ${hand.id}`)
    expect(del.code).toBe(1)
    expect(del.json.error_code).toBe('ERR_WARREN_6006')
    expect(del.json.msg).toContain('hand.yml')
  })

  test('update changes what the endpoint answers', async () => {
    const r = warrenApi(`endpoints update ${id} --traffic-policy 'on_http_request: [{actions: [{type: custom-response, config: {body: updated}}]}]'`)
    expect(r.code).toBe(0)
    expect(r.json).toMatchObject({ id, description: 'e2e' })
    expect((await get(edge!)).body).toBe('updated')
  })

  test('after a restart of the edge the endpoint is still there', async () => {
    await edge!.stop()
    edge = undefined
    edge = await start()
    const res = await get(edge)
    expect(res.status).toBe(200)
    expect(res.body).toBe('updated')
    expect(warrenApi(`endpoints get ${id}`).json).toMatchObject({ id, url: `http://${HOST}:${edge!.httpPort}` })
  })

  test('delete: the file goes and the URL answers 404', async () => {
    const r = warrenApi(`endpoints delete ${id}`)
    expect(r.code).toBe(0)
    expect(r.json).toEqual({ id, deleted: true })
    expect(existsSync(join(policies, `api-${id}.yml`))).toBe(false)
    const res = await get(edge!)
    expect(res.status).toBe(404)
    expect(res.headers['warren-error-code']).toBe('ERR_WARREN_3200')
    expect(warrenApi(`endpoints get ${id}`).json.error_code).toBe('ERR_WARREN_6003')
  })

  test('without api_keys the edge warns and the API answers 401 except /healthz and /readyz', async () => {
    await edge!.stop()
    edge = undefined
    edge = await start('')
    const line = await edge.waitForLog(/REST API has no api_keys/)
    expect(JSON.parse(line).level).toBe('warn')
    const res = await fetch(`http://127.0.0.1:${edge.apiPort}/endpoints`, { headers: { authorization: `Bearer ${KEY}` } })
    expect(res.status).toBe(401)
    expect(((await res.json()) as { error_code: string }).error_code).toBe('ERR_WARREN_6002')
    expect((await fetch(`http://127.0.0.1:${edge.apiPort}/healthz`)).status).toBe(200)
  })
})
