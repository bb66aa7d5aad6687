import { ERROR_CODE_HEADER, type ErrorCode } from '../lib/errors.ts'

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/**
 * An error the edge itself produced: the status, the `Warren-Error-Code` header, and a small page
 * (HTML for browsers, JSON for API clients, text otherwise) that names the code so users can search
 * for it. The JSON has the agent's shape (`{error: {code, message, upstream}}`), so a client reads
 * both alike.
 */
export function errorResponse(status: number, code: ErrorCode, message: string, accept?: string | null, upstream?: string): Response {
  const headers = new Headers({ [ERROR_CODE_HEADER]: code, 'cache-control': 'no-store' })
  if (accept && /application\/json/i.test(accept) && !accept.includes('text/html')) {
    headers.set('content-type', 'application/json')
    return new Response(JSON.stringify({ error: { code, message, ...(upstream ? { upstream } : {}) } }), { status, headers })
  }
  if (accept?.includes('text/html')) {
    headers.set('content-type', 'text/html; charset=utf-8')
    return sized(`<!doctype html><html><head><meta charset="utf-8"><title>${status} ${code}</title></head><body><h1>${escapeHtml(message)}</h1><p><code>${code}</code></p></body></html>\n`, status, headers)
  }
  headers.set('content-type', 'text/plain; charset=utf-8')
  return sized(`${message}\n\n${code}\n`, status, headers)
}

/**
 * An edge-made answer with its Content-Length written down: the wire would get it anyway, and the
 * request event reports the real `body_length` instead of -1 (unknown) only when the header says it.
 * An empty body is sent as none (`0`, except on 204 and 304, which carry no Content-Length).
 */
export function sized(body: string, status: number, headers: Headers): Response {
  if (body === '') {
    if (status !== 204 && status !== 304) headers.set('content-length', '0')
    return new Response(null, { status, headers })
  }
  headers.set('content-length', String(Buffer.byteLength(body)))
  return new Response(body, { status, headers })
}
