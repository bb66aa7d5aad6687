import { readdir, realpath, stat } from 'node:fs/promises'
import { join, relative, resolve, sep } from 'node:path'

/** A parsed `Range` header against a file of `size` bytes. */
export type RangeResult = { kind: 'none' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' }

/**
 * Reads a `Range: bytes=…` header. One range is served as 206; several ranges (rare, and
 * multipart answers are optional per RFC 9110) and any other unit fall back to the whole file.
 *
 * @example parseRange('bytes=0-99', 1000) // { kind: 'partial', start: 0, end: 99 }
 */
export function parseRange(header: string | null, size: number): RangeResult {
  if (!header) return { kind: 'none' }
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header)
  if (!m) return { kind: 'none' }
  const specs = m[1]!.split(',').map((s) => s.trim())
  if (specs.length !== 1) return { kind: 'none' }
  const r = /^(\d*)-(\d*)$/.exec(specs[0]!)
  if (!r || (r[1] === '' && r[2] === '')) return { kind: 'none' }
  if (r[1] === '') {
    // Suffix range: the last N bytes.
    const n = Number(r[2])
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' }
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(r[1])
  const end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1)
  if (start >= size || (r[2] !== '' && Number(r[2]) < start)) return { kind: 'unsatisfiable' }
  return { kind: 'partial', start, end }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function humanSize(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = -1
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`
}

/**
 * A name the file server hides unless dotfiles are served: `.env`, `.git`, `.htpasswd` hold secrets
 * far more often than content. `.well-known` (RFC 8615) is public by definition and stays visible.
 */
function hidden(name: string): boolean {
  return name.startsWith('.') && name !== '.well-known'
}

/** True when a path below the root goes through a hidden name. */
function hiddenPath(relPath: string): boolean {
  return relPath.split(sep).some(hidden)
}

async function listing(dir: string, urlPath: string, dotfiles: boolean): Promise<Response> {
  const entries = await readdir(dir, { withFileTypes: true })
  const rows = await Promise.all(
    entries.filter((e) => dotfiles || !hidden(e.name)).map(async (e) => {
      const info = await stat(join(dir, e.name)).catch(() => undefined)
      const isDir = info?.isDirectory() ?? e.isDirectory()
      return { name: e.name, isDir, size: info?.size ?? 0, mtime: info?.mtime }
    }),
  )
  rows.sort((a, b) => (a.isDir === b.isDir ? a.name.localeCompare(b.name) : a.isDir ? -1 : 1))
  const title = `Index of ${escapeHtml(decodeURIComponent(urlPath))}`
  const lines = rows.map((r) => {
    const href = encodeURIComponent(r.name) + (r.isDir ? '/' : '')
    const label = escapeHtml(r.name) + (r.isDir ? '/' : '')
    return `<tr><td><a href="${href}">${label}</a></td><td>${r.isDir ? '-' : humanSize(r.size)}</td><td>${r.mtime?.toISOString() ?? ''}</td></tr>`
  })
  const up = urlPath === '/' ? '' : '<tr><td><a href="../">../</a></td><td></td><td></td></tr>'
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}td{padding:.2em 1.5em .2em 0}th{text-align:left}</style></head>
<body><h1>${title}</h1><table><tr><th>Name</th><th>Size</th><th>Modified</th></tr>${up}${lines.join('')}</table></body></html>`
  return new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8' } })
}

function notFound(): Response {
  return new Response('404 page not found\n', { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' } })
}

export interface FileServerOptions {
  /** Serve and list names that start with a dot (`.env`, `.git/`); off by default (404, left out of listings). */
  dotfiles?: boolean
}

/**
 * The built-in file server behind `file:///path` upstreams: files with their content type, single
 * byte ranges, conditional requests (ETag, If-Modified-Since, If-Range), `index.html` for a
 * directory when present, otherwise a directory listing. Nothing outside `root` is reachable, not
 * even through a symbolic link, and dotfiles only when `options.dotfiles` asks for them.
 *
 * @example Bun.serve({ fetch: fileServer('/srv/www') })
 */
export function fileServer(root: string, options: FileServerOptions = {}): (req: Request) => Promise<Response> {
  const dotfiles = options.dotfiles ?? false
  const base = resolve(root)
  let realBase: Promise<string> | undefined
  const inside = (path: string, dir: string) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep)
  return async function serveFile(req) {
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return new Response('405 method not allowed\n', { status: 405, headers: { allow: 'GET, HEAD' } })
    const url = new URL(req.url)
    let rel: string
    try {
      rel = decodeURIComponent(url.pathname)
    } catch {
      return new Response('400 bad request\n', { status: 400 })
    }
    if (rel.includes('\0')) return notFound()
    const path = resolve(join(base, rel))
    if (!inside(path, base)) return notFound()
    if (!dotfiles && hiddenPath(relative(base, path))) return notFound()
    // Symbolic links may point anywhere: only what really lies under the root is served.
    realBase ??= realpath(base).catch(() => base)
    const real = await realpath(path).catch(() => undefined)
    if (!real || !inside(real, await realBase)) return notFound()
    // …and a visible name must not lead into a hidden one (`config -> .git/config`).
    if (!dotfiles && hiddenPath(relative(await realBase, real))) return notFound()
    const info = await stat(real).catch(() => undefined)
    if (!info) return notFound()

    if (info.isDirectory()) {
      if (!url.pathname.endsWith('/')) return new Response(null, { status: 301, headers: { location: `${url.pathname}/${url.search}` } })
      const index = await realpath(join(real, 'index.html')).catch(() => undefined)
      const visible = index && inside(index, await realBase) && (dotfiles || !hiddenPath(relative(await realBase, index)))
      const indexInfo = visible ? await stat(index).catch(() => undefined) : undefined
      if (!index || !indexInfo?.isFile()) return listing(real, url.pathname, dotfiles)
      return sendFile(req, index, indexInfo)
    }
    if (!info.isFile()) return notFound()
    return sendFile(req, real, info)
  }
}

function sendFile(req: Request, path: string, info: { size: number; mtime: Date }): Response {
  const size = info.size
  const etag = `W/"${size.toString(16)}-${Math.floor(info.mtime.getTime()).toString(16)}"`
  const lastModified = new Date(Math.floor(info.mtime.getTime() / 1000) * 1000).toUTCString()
  const file = Bun.file(path)
  const headers = new Headers({
    'content-type': file.type || 'application/octet-stream',
    'accept-ranges': 'bytes',
    etag,
    'last-modified': lastModified,
  })

  const inm = req.headers.get('if-none-match')
  const ims = req.headers.get('if-modified-since')
  if ((inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')) || (!inm && ims && Date.parse(ims) >= Date.parse(lastModified)))
    return new Response(null, { status: 304, headers })

  let range = parseRange(req.headers.get('range'), size)
  const ifRange = req.headers.get('if-range')
  if (ifRange && ifRange !== etag && ifRange !== lastModified) range = { kind: 'none' }
  if (range.kind === 'unsatisfiable') {
    headers.set('content-range', `bytes */${size}`)
    return new Response(null, { status: 416, headers })
  }
  if (range.kind === 'partial') {
    headers.set('content-range', `bytes ${range.start}-${range.end}/${size}`)
    headers.set('content-length', String(range.end - range.start + 1))
    return new Response(req.method === 'HEAD' ? null : file.slice(range.start, range.end + 1), { status: 206, headers })
  }
  headers.set('content-length', String(size))
  return new Response(req.method === 'HEAD' ? null : file, { status: 200, headers })
}
