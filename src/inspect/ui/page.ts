/**
 * The inspector's web UI: one self-contained page (no external assets, so it is embedded in the
 * binary as this string). It polls the local API, lists requests live, shows a request's detail with
 * bodies rendered as JSON, form, text or hex, and replays (optionally edited).
 */
export const INSPECTOR_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>warren inspector</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
*{box-sizing:border-box}body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#1d2330;background:#f5f6f8}
header{display:flex;gap:1em;align-items:center;padding:.6em 1em;background:#1d2330;color:#fff}
header h1{font-size:1em;margin:0}header .status{opacity:.8;font-size:.9em}
main{display:grid;grid-template-columns:minmax(320px,40%) 1fr;height:calc(100vh - 2.6em)}
#list{overflow:auto;border-right:1px solid #d5d9e0;background:#fff}
.filters{display:flex;gap:.4em;padding:.5em;border-bottom:1px solid #d5d9e0;position:sticky;top:0;background:#fff}
.filters input{flex:1;padding:.3em}.filters button{padding:.3em .6em}
table{border-collapse:collapse;width:100%}td,th{padding:.35em .5em;text-align:left;white-space:nowrap}
tbody tr{cursor:pointer;border-bottom:1px solid #eef0f3}tbody tr:hover{background:#f0f4ff}tbody tr.sel{background:#dfe8ff}
td.path{max-width:22em;overflow:hidden;text-overflow:ellipsis}.s2{color:#107a32}.s3{color:#8a6d00}.s4,.s5,.err{color:#b3261e}
#detail{overflow:auto;padding:1em}#detail h2{font-size:1.05em;margin:.2em 0 .6em;word-break:break-all}
section{background:#fff;border:1px solid #d5d9e0;border-radius:6px;margin-bottom:1em}
section h3{margin:0;padding:.5em .8em;font-size:.95em;border-bottom:1px solid #eef0f3;display:flex;justify-content:space-between}
.headers td:first-child{font-weight:600;color:#4a5468}.headers td{white-space:normal;word-break:break-all;vertical-align:top}
pre{margin:0;padding:.8em;overflow:auto;max-height:28em;font:12px/1.4 ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
.tabs button{border:0;background:none;cursor:pointer;padding:0 .4em;color:#4a5468}.tabs button.on{font-weight:700;color:#1d2330}
.actions{display:flex;gap:.5em;margin-bottom:1em}.actions button{padding:.4em .9em;cursor:pointer}
form.edit{display:grid;gap:.4em;padding:.8em}form.edit[hidden]{display:none}form.edit textarea{font:12px ui-monospace,monospace;min-height:6em}
.empty{padding:2em;color:#6b7385;text-align:center}
</style></head>
<body>
<header><h1>warren inspector</h1><span class="status" id="status">connecting…</span></header>
<main>
<div id="list">
  <div class="filters"><input id="fpath" placeholder="filter by path"><input id="fstatus" placeholder="status (e.g. 4)" size="6"><button id="clear" title="Delete every captured request">Clear</button></div>
  <table><thead><tr><th>Method</th><th>Path</th><th>Status</th><th>Duration</th><th>Size</th></tr></thead><tbody id="rows"></tbody></table>
  <div class="empty" id="empty">No requests yet. Send one to your endpoint.</div>
</div>
<div id="detail"><div class="empty">Select a request to see it here.</div></div>
</main>
<script>
const $ = (id) => document.getElementById(id)
let selected = null
const el = (tag, attrs, ...kids) => {
  const n = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) k === 'class' ? (n.className = v) : k.startsWith('on') ? (n[k] = v) : n.setAttribute(k, v)
  for (const kid of kids) if (kid != null) n.append(kid)
  return n
}
const size = (n) => n < 1024 ? n + ' B' : n < 1048576 ? (n / 1024).toFixed(1) + ' KiB' : (n / 1048576).toFixed(1) + ' MiB'
const statusClass = (s) => s ? 's' + String(s)[0] : 'err'
async function api(path, init) { const r = await fetch(path, init); if (!r.ok && r.status !== 204) throw new Error((await r.json()).error?.message || r.statusText); return r.status === 204 ? null : r.json() }

async function refresh() {
  try {
    const q = new URLSearchParams({ limit: '200' })
    if ($('fpath').value) q.set('path', $('fpath').value)
    if ($('fstatus').value) q.set('status', $('fstatus').value)
    const [{ requests }, status] = await Promise.all([api('/api/requests/http?' + q), api('/api/status')])
    $('status').textContent = (status.online ? 'online' : 'reconnecting') + ' · ' + (status.account || '') + ' · ' + (status.endpoints || []).map((e) => e.url).join(', ')
    const rows = $('rows'); rows.replaceChildren()
    for (const r of requests) {
      const code = r.response && r.response.status_code
      const tr = el('tr', { 'data-id': r.id, class: r.id === selected ? 'sel' : '', onclick: () => show(r.id) },
        el('td', {}, r.request.method), el('td', { class: 'path', title: r.request.uri }, r.request.uri + (r.replay_of ? ' ↻' : '')),
        el('td', { class: statusClass(code) }, code ? String(code) : r.error ? 'error' : '…'),
        el('td', {}, r.duration_ms == null ? '…' : r.duration_ms + ' ms'), el('td', {}, r.response ? size(r.response.body.size) : ''))
      rows.append(tr)
    }
    $('empty').style.display = requests.length ? 'none' : ''
  } catch (e) { $('status').textContent = 'inspector unreachable: ' + e.message }
}

function decode(b64) { const s = atob(b64 || ''); const u = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return u }
function hex(bytes) {
  const out = []
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, i + 16)
    out.push(i.toString(16).padStart(8, '0') + '  ' + [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(48) + '  ' + [...row].map((b) => b >= 32 && b < 127 ? String.fromCharCode(b) : '.').join(''))
  }
  return out.join('\\n')
}
function views(body) {
  const bytes = decode(body.base64)
  const text = new TextDecoder().decode(bytes)
  const printable = !/[\\x00-\\x08\\x0e-\\x1f]/.test(text)
  const v = {}
  const type = (body.content_type || '').toLowerCase()
  if (printable && (type.includes('json') || /^\\s*[\\[{]/.test(text))) { try { v.json = JSON.stringify(JSON.parse(text), null, 2) } catch {} }
  if (printable && type.includes('x-www-form-urlencoded')) v.form = [...new URLSearchParams(text)].map(([k, x]) => k + ' = ' + x).join('\\n')
  if (printable) v.text = text
  v.hex = hex(bytes)
  return v
}
function bodySection(title, body) {
  if (!body || body.size === 0) return el('section', {}, el('h3', {}, title + ' body', el('span', {}, 'empty')))
  const v = views(body); const names = Object.keys(v); const pre = el('pre', {}); const tabs = el('span', { class: 'tabs' })
  const pick = (n) => { pre.textContent = v[n]; for (const b of tabs.children) b.classList.toggle('on', b.textContent === n) }
  for (const n of names) tabs.append(el('button', { type: 'button', onclick: () => pick(n) }, n))
  pick(names[0])
  return el('section', {}, el('h3', {}, title + ' body · ' + size(body.size) + (body.truncated ? ' (truncated)' : ''), tabs), pre)
}
function headerSection(title, line, headers) {
  return el('section', {}, el('h3', {}, title), el('table', { class: 'headers' }, el('tbody', {},
    el('tr', {}, el('td', { colspan: '2' }, line)), ...headers.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v))))))
}

async function show(id) {
  selected = id
  for (const tr of $('rows').children) tr.classList.toggle('sel', tr.dataset.id === id)
  const r = await api('/api/requests/http/' + id)
  const d = $('detail'); d.replaceChildren()
  d.append(el('h2', {}, r.request.method + ' ' + r.request.uri))
  const edit = el('form', { class: 'edit', hidden: '' })
  const method = el('input', { value: r.request.method }); const uri = el('input', { value: r.request.uri })
  const hdrs = el('textarea', {}); hdrs.value = r.request.headers.map(([k, v]) => k + ': ' + v).join('\\n')
  const body = el('textarea', {}); body.value = new TextDecoder().decode(decode(r.request.body.base64))
  edit.append(el('label', {}, 'Method ', method), el('label', {}, 'Path ', uri), el('label', {}, 'Headers'), hdrs, el('label', {}, 'Body'), body,
    el('button', { type: 'submit' }, 'Send edited replay'))
  edit.onsubmit = (ev) => { ev.preventDefault(); replayIt({ id, method: method.value, uri: uri.value, headers: hdrs.value.split('\\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]), body: body.value }) }
  d.append(el('div', { class: 'actions' }, el('button', { id: 'replay', onclick: () => replayIt({ id }) }, 'Replay'),
    el('button', { onclick: () => { edit.hidden = !edit.hidden } }, 'Replay with edits…'),
    el('span', {}, r.remote_addr + ' · ' + new Date(r.start).toLocaleTimeString() + (r.duration_ms != null ? ' · ' + r.duration_ms + ' ms' : '') + (r.replay_of ? ' · replay of ' + r.replay_of : ''))))
  d.append(edit)
  if (r.error) d.append(el('section', {}, el('h3', { class: 'err' }, r.error)))
  d.append(headerSection('Request', r.request.method + ' ' + r.request.uri + ' ' + r.request.proto, r.request.headers), bodySection('Request', r.request.body))
  if (r.response) d.append(headerSection('Response', r.response.proto + ' ' + r.response.status, r.response.headers), bodySection('Response', r.response.body))
}
async function replayIt(payload) {
  try { const r = await api('/api/requests/http', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) }); await refresh(); show(r.id) }
  catch (e) { alert('Replay failed: ' + e.message) }
}
$('clear').onclick = async () => { await api('/api/requests/http', { method: 'DELETE' }); selected = null; $('detail').replaceChildren(el('div', { class: 'empty' }, 'Select a request to see it here.')); refresh() }
$('fpath').oninput = refresh; $('fstatus').oninput = refresh
refresh(); setInterval(refresh, 1000)
</script>
</body></html>
`
