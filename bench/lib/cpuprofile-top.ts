// Summarizes a `bun --cpu-prof` profile: self and inclusive share of samples per function.
//   bun bench/lib/cpuprofile-top.ts CPU.….cpuprofile [rows=30]
// Shares are of sample counts, not of the samples' time deltas: on a shared machine a delta also
// holds the time the process was not running, and inflates whichever frame happened to be on top.
// Inclusive shares stop at `await`: code after one runs under (root), not under its caller.

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

const [file, rowsArg] = process.argv.slice(2)
if (!file) throw new Error('usage: bun bench/lib/cpuprofile-top.ts FILE.cpuprofile [rows]')
const rows = Number(rowsArg ?? 30)
const profile = (await Bun.file(file).json()) as { nodes: ProfileNode[]; samples: number[] }
const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

const name = (cf: CallFrame): string => `${cf.functionName || '(anonymous)'}  ${cf.url ? `${cf.url.replace(/^.*?\/(src|node_modules)\//, '$1/')}:${cf.lineNumber + 1}` : '(native)'}`
const self = new Map<string, number>()
const inclusive = new Map<string, number>()
for (const sample of profile.samples) {
  const top = name(nodes.get(sample)!.callFrame)
  self.set(top, (self.get(top) ?? 0) + 1)
  const seen = new Set<string>()
  for (let id: number | undefined = sample; id !== undefined; id = parent.get(id)) seen.add(name(nodes.get(id)!.callFrame))
  for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + 1)
}

const total = profile.samples.length
const print = (title: string, counts: Map<string, number>) => {
  console.log(`--- ${title} (${total} samples)`)
  for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`${((100 * n) / total).toFixed(1).padStart(5)} %  ${k}`)
}
print('self', self)
print('inclusive', inclusive)

export {} // a module, not a global script (keeps tsc from merging the bench files)
