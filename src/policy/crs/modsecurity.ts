/**
 * The OWASP Core Rule Set run by libmodsecurity (ModSecurity v3, Debian's libmodsecurity3 and
 * modsecurity-crs) through bun:ffi: the real CRS engine, never a hand-written subset. Each
 * transaction runs synchronously on the calling thread (about 1-3 ms per request on this machine).
 */
import { CString, dlopen, FFIType, JSCallback, ptr, type Pointer } from 'bun:ffi'
import { existsSync } from 'node:fs'
import { CODES, WarrenError } from '../../lib/errors.ts'

/** The shared library (found by the dynamic loader); WARREN_MODSECURITY_LIB names another file. */
const LIBRARY = process.env.WARREN_MODSECURITY_LIB ?? 'libmodsecurity.so.3'
/** Debian's modsecurity-crs paths. */
export const CRS_SETUP = '/etc/modsecurity/crs/crs-setup.conf'
export const CRS_RULES = '/usr/share/modsecurity-crs/rules'
/** Ids of warren's own rules (outside CRS's 900000-999999 range), which report the anomaly score when nothing blocks. */
const SCORE_RULE_ID = 1990001

const SYMBOLS = {
  msc_init: { args: [], returns: FFIType.ptr },
  msc_set_connector_info: { args: [FFIType.ptr, FFIType.cstring], returns: FFIType.void },
  msc_set_log_cb: { args: [FFIType.ptr, FFIType.function], returns: FFIType.void },
  msc_create_rules_set: { args: [], returns: FFIType.ptr },
  msc_rules_add: { args: [FFIType.ptr, FFIType.cstring, FFIType.ptr], returns: FFIType.i32 },
  msc_new_transaction: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.ptr },
  msc_process_connection: { args: [FFIType.ptr, FFIType.cstring, FFIType.i32, FFIType.cstring, FFIType.i32], returns: FFIType.i32 },
  msc_process_uri: { args: [FFIType.ptr, FFIType.cstring, FFIType.cstring, FFIType.cstring], returns: FFIType.i32 },
  msc_add_n_request_header: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  msc_process_request_headers: { args: [FFIType.ptr], returns: FFIType.i32 },
  msc_append_request_body: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  msc_process_request_body: { args: [FFIType.ptr], returns: FFIType.i32 },
  msc_add_n_response_header: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  msc_process_response_headers: { args: [FFIType.ptr, FFIType.i32, FFIType.cstring], returns: FFIType.i32 },
  msc_append_response_body: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  msc_process_response_body: { args: [FFIType.ptr], returns: FFIType.i32 },
  msc_intervention: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  msc_process_logging: { args: [FFIType.ptr], returns: FFIType.i32 },
  msc_transaction_cleanup: { args: [FFIType.ptr], returns: FFIType.void },
} as const

function open() {
  return dlopen(LIBRARY, SYMBOLS).symbols
}
type Lib = ReturnType<typeof open>

/** What the engine needs to know of a request. */
export interface CrsRequest {
  method: string
  /** Path and query as the client sent them. */
  uri: string
  /** `1.1`, `2.0`. */
  httpVersion: string
  headers: Headers
  clientIp: string
  clientPort: number
  serverIp: string
  serverPort: number
  /** The first bytes of the body (checked only when the rule set reads bodies). */
  body?: Buffer
}

export interface CrsResponse {
  status: number
  headers: Headers
  body?: Buffer
}

export interface CrsVerdict {
  blocked: boolean
  /** The inbound (request) or outbound (response) anomaly score. */
  score: number
  /** CRS rules that matched, in order. */
  matched: number[]
}

let loaded: { lib: Lib; msc: Pointer; free: (p: Pointer) => void } | undefined
/** Log lines of the transaction being run (the engine is synchronous, so one collector is enough). */
let collecting: string[] = []

/** Opens libmodsecurity once; throws ERR_WARREN_2133 naming what is missing. */
function library(): { lib: Lib; msc: Pointer; free: (p: Pointer) => void } {
  if (loaded) return loaded
  if (!existsSync(CRS_SETUP) || !existsSync(CRS_RULES))
    throw new WarrenError(CODES.CRS_UNAVAILABLE, `the OWASP Core Rule Set is not installed (${CRS_RULES}); install Debian's modsecurity-crs`)
  let lib: Lib
  try {
    lib = open()
  } catch (err) {
    throw new WarrenError(CODES.CRS_UNAVAILABLE, `libmodsecurity could not be loaded (${LIBRARY}: ${(err as Error).message}); install Debian's libmodsecurity3`)
  }
  const msc = lib.msc_init() as Pointer | null
  if (!msc) throw new WarrenError(CODES.CRS_UNAVAILABLE, 'libmodsecurity failed to start')
  lib.msc_set_connector_info(msc, cstr('warren'))
  // Without a callback libmodsecurity prints every rule match to stdout.
  const onLog = new JSCallback((_data: Pointer, message: Pointer) => void collecting.push(new CString(message).toString()), { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.void })
  lib.msc_set_log_cb(msc, onLog.ptr as Pointer)
  // The intervention's strings are malloc'd by the library and freed by the caller.
  const libc = dlopen('libc.so.6', { free: { args: [FFIType.ptr], returns: FFIType.void } }).symbols
  loaded = { lib, msc, free: (p) => libc.free(p) }
  return loaded
}

function cstr(text: string): Buffer {
  return Buffer.from(`${text}\0`)
}

/** Loaded rule sets by their directives (each costs ~0.1-0.5 s and a few MB to load; shared by every action that asks for the same). */
const ruleSets = new Map<string, Pointer>()

export interface RuleSetOptions {
  phase: 'request' | 'response'
  excludeRuleIds: readonly number[]
}

function directives(options: RuleSetOptions): string {
  // Body access stays on: libmodsecurity 3.0.9 skips the whole body phase (2 or 4, where CRS
  // decides) when it is off. Without `process_body` no body bytes are appended instead.
  const lines = ['SecRuleEngine On', 'SecRequestBodyAccess On', 'SecResponseBodyAccess On', `Include ${CRS_SETUP}`]
  if (options.phase === 'request') {
    lines.push(`Include ${CRS_RULES}/REQUEST-*.conf`)
    lines.push(`SecAction "id:${SCORE_RULE_ID},phase:2,pass,log,msg:'warren-crs-score',logdata:'%{tx.anomaly_score}'"`)
  } else {
    // The response rules need the transaction variables that 901 sets up, not the request checks.
    lines.push('SecResponseBodyMimeType text/plain text/html text/xml application/json')
    lines.push(`Include ${CRS_RULES}/REQUEST-901-INITIALIZATION.conf`, `Include ${CRS_RULES}/RESPONSE-*.conf`)
    lines.push(`SecAction "id:${SCORE_RULE_ID + 1},phase:4,pass,log,msg:'warren-crs-score',logdata:'%{tx.outbound_anomaly_score}'"`)
  }
  if (options.excludeRuleIds.length) lines.push(`SecRuleRemoveById ${options.excludeRuleIds.join(' ')}`)
  return lines.join('\n')
}

/** The CRS rule set for these options, loaded once. Throws ERR_WARREN_2133 when the library or rules are missing. */
export function crsRuleSet(options: RuleSetOptions): Pointer {
  const { lib } = library()
  const text = directives(options)
  const cached = ruleSets.get(text)
  if (cached) return cached
  const rules = lib.msc_create_rules_set() as Pointer
  const error = new BigUint64Array(1)
  const count = lib.msc_rules_add(rules, cstr(text), ptr(error))
  if (count < 0) {
    const why = error[0] ? new CString(Number(error[0]) as Pointer).toString() : 'unknown error'
    throw new WarrenError(CODES.CRS_UNAVAILABLE, `the OWASP Core Rule Set failed to load: ${why}`)
  }
  ruleSets.set(text, rules)
  return rules
}

function addHeaders(lib: Lib, tx: Pointer, headers: Headers, add: 'msc_add_n_request_header' | 'msc_add_n_response_header') {
  headers.forEach((value, name) => {
    const k = Buffer.from(name)
    const v = Buffer.from(value)
    if (k.length && v.length) lib[add](tx, ptr(k), k.length, ptr(v), v.length)
    else if (k.length) lib[add](tx, ptr(k), k.length, ptr(Buffer.from('\0')), 0)
  })
}

/**
 * Runs one transaction through `rules`: the request, and the response when given. The verdict comes
 * from ModSecurity's intervention (CRS blocks by anomaly score: 5 inbound, 4 outbound at paranoia 1).
 */
export function runCrs(rules: Pointer, req: CrsRequest, res?: CrsResponse): CrsVerdict {
  const { lib, msc, free } = library()
  collecting = []
  const tx = lib.msc_new_transaction(msc, rules, null) as Pointer | null
  if (!tx) throw new WarrenError(CODES.CRS_UNAVAILABLE, 'libmodsecurity could not start a transaction')
  let blocked = false
  let blockLog = ''
  try {
    const intervened = () => {
      // struct ModSecurityIntervention_t { int status; int pause; char *url; char *log; int disruptive; }
      const it = new Int32Array(8)
      it[0] = 200
      if (lib.msc_intervention(tx, ptr(it)) === 0) return false
      const words = new BigUint64Array(it.buffer)
      const urlAt = Number(words[1])
      const logAt = Number(words[2])
      if (logAt && it[6]) blockLog = new CString(logAt as Pointer).toString()
      if (logAt) free(logAt as Pointer)
      if (urlAt) free(urlAt as Pointer)
      return it[6] !== 0
    }
    lib.msc_process_connection(tx, cstr(req.clientIp), req.clientPort, cstr(req.serverIp), req.serverPort)
    lib.msc_process_uri(tx, cstr(req.uri), cstr(req.method), cstr(req.httpVersion))
    addHeaders(lib, tx, req.headers, 'msc_add_n_request_header')
    lib.msc_process_request_headers(tx)
    blocked = intervened()
    if (!blocked) {
      if (req.body?.length) lib.msc_append_request_body(tx, ptr(req.body), req.body.length)
      lib.msc_process_request_body(tx)
      blocked = intervened()
    }
    if (!blocked && res) {
      addHeaders(lib, tx, res.headers, 'msc_add_n_response_header')
      lib.msc_process_response_headers(tx, res.status, cstr(`HTTP ${req.httpVersion}`))
      blocked = intervened()
      if (!blocked) {
        if (res.body?.length) lib.msc_append_response_body(tx, ptr(res.body), res.body.length)
        lib.msc_process_response_body(tx)
        blocked = intervened()
      }
    }
    lib.msc_process_logging(tx)
  } finally {
    lib.msc_transaction_cleanup(tx)
  }
  const matched: number[] = []
  let score = 0
  for (const line of collecting) {
    const id = Number(/\[id "(\d+)"\]/.exec(line)?.[1])
    if (id === SCORE_RULE_ID || id === SCORE_RULE_ID + 1) score = Number(/\[data "(\d+)"\]/.exec(line)?.[1] ?? 0)
    else if (id) matched.push(id)
  }
  // When CRS blocks, its blocking rule (949110 / 959100) names the score it compared.
  if (blocked) score = Number(/ANOMALY_SCORE' \(Value: `(\d+)'/i.exec(blockLog)?.[1] ?? score)
  collecting = []
  return { blocked, score, matched }
}

/** Whether the engine can run here (the library and rules load); the reason when not. */
export function crsAvailable(): true | string {
  try {
    library()
    return true
  } catch (err) {
    return (err as Error).message
  }
}
