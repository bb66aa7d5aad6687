import type { AgentSessionObject } from './types.ts'

/** What the agent-session events and `GET /tunnel-sessions` read from a session. */
export interface SessionLike {
  readonly id: string
  readonly account: { name: string } | undefined
  readonly remoteAddr: string
  readonly connectedAt: number
  /** The agent's Auth `Extra` without its secrets (OS, Version, UserAgent, ClientType…). */
  readonly clientInfo: Readonly<Record<string, unknown>>
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : ''
}

/** A session as events and the API show it (ngrok's tunnel session fields where they apply). */
export function agentSessionObject(session: SessionLike): AgentSessionObject {
  const info = session.clientInfo
  return {
    id: session.id,
    account: session.account?.name ?? '',
    remote_addr: session.remoteAddr,
    started_at: new Date(session.connectedAt).toISOString(),
    agent_version: text(info.Version),
    os: text(info.OS),
    client_info: { ...info },
  }
}
