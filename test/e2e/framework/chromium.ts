import { existsSync } from 'node:fs'

/** Debian's Chromium (CHROMIUM_PATH overrides). */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Launch flags for a headless Chromium on a closed network, as root. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** Installs Chromium with apt when it is missing and we may; says why not otherwise. */
function ensureChromium(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n']
  const install = Bun.spawnSync([...sudo, 'bash', '-c', 'apt-get update -qq && apt-get -o DPkg::Lock::Timeout=300 install -y -qq chromium'], { stdout: 'ignore', stderr: 'pipe' })
  if (existsSync(CHROMIUM)) return undefined
  return `Chromium is not installed at ${CHROMIUM} and apt-get could not install it (${install.stderr.toString().trim().split('\n').pop() ?? 'no output'})`
}

/** playwright-core plus a Chromium to drive, or the reason a browser test must be skipped. */
export async function loadBrowser(): Promise<{ playwright?: typeof import('playwright-core'); skipReason?: string }> {
  try {
    const playwright = await import('playwright-core')
    const skipReason = ensureChromium()
    return skipReason ? { skipReason } : { playwright }
  } catch (err) {
    return { skipReason: `playwright-core is not installed (${(err as Error).message}); run npm install` }
  }
}
