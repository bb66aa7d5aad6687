/**
 * A small `User-Agent` parser for `req.user_agent.*`: browser and bot names, operating system and
 * device class from the common tokens. It is a heuristic (no database): unknown agents give empty
 * strings and `is_desktop`/`is_mobile`/`is_tablet` false.
 */
export interface UserAgent {
  name: string
  version: string
  os: string
  os_version: string
  device: string
  url: string
  is_mobile: boolean
  is_tablet: boolean
  is_desktop: boolean
  is_bot: boolean
}

/** First match wins, so more specific products come before the ones they imitate. */
const BROWSERS: readonly [string, RegExp][] = [
  ['Edge', /\bEdg(?:e|A|iOS)?\/([\d.]+)/],
  ['Opera', /\b(?:OPR|Opera)\/([\d.]+)/],
  ['Samsung Internet', /\bSamsungBrowser\/([\d.]+)/],
  ['Firefox', /\b(?:Firefox|FxiOS)\/([\d.]+)/],
  ['Chrome', /\b(?:Chrome|CriOS)\/([\d.]+)/],
  ['Safari', /\bVersion\/([\d.]+).*\bSafari\//],
  ['curl', /^curl\/([\d.]+)/],
  ['Wget', /^Wget\/([\d.]+)/],
  ['PostmanRuntime', /^PostmanRuntime\/([\d.]+)/],
  ['Go-http-client', /^Go-http-client\/([\d.]+)/],
  ['python-requests', /^python-requests\/([\d.]+)/],
  ['okhttp', /^okhttp\/([\d.]+)/],
]

const BOT = /bot\b|crawler|spider|slurp|facebookexternalhit|bingpreview|headless|lighthouse|monitor/i
const BOT_NAME = /\b([\w.-]*(?:bot|crawler|spider|Slurp)[\w.-]*)\/?([\d.]*)/i

const OSES: readonly [string, RegExp, ((m: RegExpExecArray) => string)?][] = [
  ['Windows', /Windows NT ([\d.]+)/, (m) => ({ '10.0': '10', '6.3': '8.1', '6.2': '8', '6.1': '7' })[m[1]!] ?? m[1]!],
  ['iOS', /\b(?:iPhone|iPad|iPod).*? OS ([\d_]+)/, (m) => m[1]!.replace(/_/g, '.')],
  ['Android', /Android ([\d.]+)/],
  ['macOS', /Mac OS X ([\d_.]+)/, (m) => m[1]!.replace(/_/g, '.')],
  ['ChromeOS', /CrOS \S+ ([\d.]+)/],
  ['Linux', /Linux/, () => ''],
]

/** Parses a User-Agent header value. */
export function parseUserAgent(raw: string): UserAgent {
  const out: UserAgent = {
    name: '',
    version: '',
    os: '',
    os_version: '',
    device: '',
    url: /\bhttps?:\/\/[^\s;)]+/.exec(raw)?.[0] ?? '',
    is_mobile: false,
    is_tablet: false,
    is_desktop: false,
    is_bot: BOT.test(raw),
  }
  if (raw === '') return out
  if (out.is_bot) {
    const m = BOT_NAME.exec(raw)
    if (m) {
      out.name = m[1]!
      out.version = m[2] ?? ''
    }
  }
  if (out.name === '')
    for (const [name, re] of BROWSERS) {
      const m = re.exec(raw)
      if (m) {
        out.name = name
        out.version = m[1]!
        break
      }
    }
  for (const [name, re, version] of OSES) {
    const m = re.exec(raw)
    if (m) {
      out.os = name
      out.os_version = version ? version(m) : (m[1] ?? '')
      break
    }
  }
  out.device = /\biPad\b/.test(raw) ? 'iPad' : /\biPhone\b/.test(raw) ? 'iPhone' : (/Android [\d.]+; ([^;)]+?)(?: Build\/[^;)]*)?\)/.exec(raw)?.[1]?.trim() ?? '')
  out.is_tablet = /\biPad\b|\bTablet\b/.test(raw) || (/Android/.test(raw) && !/Mobile/.test(raw))
  out.is_mobile = !out.is_tablet && /\bMobile\b|\biPhone\b|\biPod\b/.test(raw)
  out.is_desktop = !out.is_bot && !out.is_mobile && !out.is_tablet && /Windows NT|Macintosh|X11|CrOS/.test(raw)
  return out
}
