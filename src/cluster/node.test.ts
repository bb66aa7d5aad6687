import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRedis, redisUnavailable, type RedisServer } from '../../test/helpers/redis.ts'
import { configureLogging, log } from '../lib/log.ts'
import { loadSessionKey, SESSION_KEY_FILE } from '../policy/identity/session-key.ts'
import { connectNode, type ConnectedNode } from './node.ts'

// Two nodes on a real redis-server: what connectNode hands every node is the same.
const skip = redisUnavailable()
if (skip) console.warn(`cluster node tests skipped: ${skip}`)

let redis: RedisServer
const dirs: string[] = []
const nodes: ConnectedNode[] = []

function certsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warren-node-'))
  dirs.push(dir)
  return dir
}

async function connect(member: string, certsDir: string): Promise<ConnectedNode> {
  const node = await connectNode({ redis: redis.url, node: member, link: { listen: '127.0.0.1:0' }, lease: 5 }, { member, graceMs: 1000, certsDir, log: log.child({ component: 'test' }) })
  nodes.push(node)
  return node
}

beforeAll(async () => {
  configureLogging({ level: 'error' })
  if (!skip) redis = await startRedis()
})
afterAll(async () => {
  for (const n of nodes) n.registry.close()
  await redis?.stop()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

describe.skipIf(!!skip)('connectNode', () => {
  test('every node gets the first node’s identity session key (a user signed in on one node is on all) and the same link material', async () => {
    // The first node had run alone before: its key is the one the cluster keeps.
    const seed = certsDir()
    const own = await loadSessionKey(seed)
    const first = await connect('n1', seed)
    const other = certsDir()
    const second = await connect('n2', other)
    expect(Buffer.from(first.identityKey).equals(Buffer.from(own))).toBe(true)
    expect(Buffer.from(second.identityKey).equals(Buffer.from(own))).toBe(true)
    expect(second.identityKey.length).toBe(32)
    expect(second.cookieSecret.equals(first.cookieSecret)).toBe(true)
    expect(second.link).toEqual(first.link)
    // The second node made no key of its own.
    expect(() => readFileSync(join(other, SESSION_KEY_FILE))).toThrow()
  })
})
