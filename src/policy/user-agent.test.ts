import { describe, expect, test } from 'bun:test'
import { parseUserAgent } from './user-agent.ts'

describe('parseUserAgent()', () => {
  test.each([
    {
      ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
      want: { name: 'Chrome', version: '120.0.0.0', os: 'Windows', os_version: '10', is_desktop: true, is_mobile: false, is_bot: false },
    },
    {
      ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15',
      want: { name: 'Safari', version: '17.1', os: 'macOS', os_version: '10.15.7', is_desktop: true },
    },
    {
      ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91',
      want: { name: 'Edge', version: '120.0.2210.91' },
    },
    {
      ua: 'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
      want: { name: 'Firefox', version: '121.0', os: 'Linux', is_desktop: true },
    },
    {
      ua: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36',
      want: { name: 'Chrome', os: 'Android', os_version: '14', device: 'Pixel 8', is_mobile: true, is_tablet: false },
    },
    {
      ua: 'Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
      want: { name: 'Safari', os: 'iOS', os_version: '17.1', device: 'iPad', is_tablet: true, is_mobile: false },
    },
    {
      ua: 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
      want: { name: 'Googlebot', version: '2.1', is_bot: true, is_desktop: false, url: 'http://www.google.com/bot.html' },
    },
    { ua: 'curl/8.5.0', want: { name: 'curl', version: '8.5.0', os: '', is_desktop: false, is_bot: false } },
    { ua: '', want: { name: '', os: '', is_desktop: false, is_mobile: false, is_tablet: false, is_bot: false } },
  ])('$ua', ({ ua, want }) => {
    expect(parseUserAgent(ua)).toMatchObject(want)
  })
})
