import { expect, test } from 'bun:test'
import type { CertPair } from '../certs/pair.ts'
import { recordingLogger } from '../certs/testing.ts'
import { followAgentCertificate, type AgentPort } from './agent-port.ts'

const pair = (name: string, cert: string, inMs = 60_000): CertPair => ({ cert, key: 'k', names: [name], notAfter: new Date(Date.now() + inMs), issuer: 'CN=x', source: 'acme' })

test('followAgentCertificate() starts once a certificate exists and restarts on a new one, keeping old sessions', () => {
  const served = new Map<string, CertPair>()
  const listeners = new Set<() => void>()
  const certs = { select: (n: string) => served.get(n), onChange: (l: () => void) => (listeners.add(l), () => listeners.delete(l)) }
  const change = () => listeners.forEach((l) => l())
  const started: { tls: { cert: string }; stopped: boolean | undefined; sessions: string[] }[] = []
  const start = (tls: { cert: string; key: string }): AgentPort => {
    const entry = { tls, stopped: undefined as boolean | undefined, sessions: [`s${started.length}`] }
    started.push(entry)
    return { listener: { stop: (force) => void (entry.stopped = !!force) }, sessions: entry.sessions as never }
  }
  const controller = new AbortController()
  const logger = recordingLogger()
  const port = followAgentCertificate(certs, ['agent.custom.test', 'agent.example.com'], start, { log: logger, signal: controller.signal })
  expect(started).toEqual([])
  expect(logger.lines.map((l) => l.msg)).toEqual(['the agent port starts once its certificate is issued'])

  served.set('agent.example.com', pair('agent.example.com', 'A1'))
  change()
  expect(started.map((s) => s.tls.cert)).toEqual(['A1'])
  change() // same certificate: nothing happens
  expect(started.length).toBe(1)

  // An expired certificate for the preferred name is skipped.
  served.set('agent.custom.test', pair('agent.custom.test', 'C0', -1000))
  change()
  expect(started.length).toBe(1)

  served.set('agent.example.com', pair('agent.example.com', 'A2'))
  change()
  expect(started.map((s) => s.tls.cert)).toEqual(['A1', 'A2'])
  expect(started[0]!.stopped).toBe(false) // stopped accepting, sessions kept
  expect([...port.sessions] as unknown[]).toEqual(['s0', 's1'])

  port.listener.stop(true)
  expect(started.map((s) => s.stopped)).toEqual([true, true])
  controller.abort()
  served.set('agent.example.com', pair('agent.example.com', 'A3'))
  change()
  expect(started.length).toBe(2)
})
