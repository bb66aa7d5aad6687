import { expect, test } from 'bun:test'
import { idleTimer } from './tunnel-http.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test.each([
  { desc: 'fires once after the timeout', steps: (t: ReturnType<typeof idleTimer>) => t.set(0.05), fired: 1 },
  { desc: 'cleared (set(0)) before it fires: never', steps: (t: ReturnType<typeof idleTimer>) => (t.set(0.05), t.set(0)), fired: 0 },
  { desc: 'stopped: never', steps: (t: ReturnType<typeof idleTimer>) => (t.set(0.05), t.stop()), fired: 0 },
  { desc: 'a shorter timeout than the armed one still fires on time', steps: (t: ReturnType<typeof idleTimer>) => (t.set(60), t.set(0.05)), fired: 1 },
  {
    desc: 'set and cleared per request, then left idle: fires once',
    steps: (t: ReturnType<typeof idleTimer>) => {
      for (let i = 0; i < 1000; i++) {
        t.set(0.05)
        t.set(0)
      }
      t.set(0.05)
    },
    fired: 1,
  },
])('idleTimer(): $desc', async ({ steps, fired }) => {
  let count = 0
  const t = idleTimer(() => count++)
  const started = performance.now()
  steps(t)
  await sleep(400)
  expect(count).toBe(fired)
  if (fired) expect(performance.now() - started).toBeGreaterThanOrEqual(50)
  t.stop()
})

test('idleTimer(): a deadline moved while armed fires at the new deadline, not the first', async () => {
  const at: number[] = []
  const started = performance.now()
  const t = idleTimer(() => at.push(performance.now() - started))
  t.set(0.1)
  await sleep(60)
  t.set(0.1)
  await sleep(400)
  expect(at.length).toBe(1)
  expect(at[0]!).toBeGreaterThanOrEqual(155)
})
