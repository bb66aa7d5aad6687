import { expect, test } from 'bun:test'
import { workerNode } from './serve.ts'

test('a worker of --workers N in a cluster is node <node>.w<n> with its link ports shifted by n - 1', () => {
  const cluster = { redis: 'redis://127.0.0.1:6379', node: 'a', link: { listen: '127.0.0.1:4450', advertise: '[::1]:5450' }, lease: 3 }
  expect(workerNode(cluster, 1)).toEqual({ ...cluster, node: 'a.w1', link: { listen: '127.0.0.1:4450', advertise: '[::1]:5450' } })
  expect(workerNode(cluster, 3)).toEqual({ ...cluster, node: 'a.w3', link: { listen: '127.0.0.1:4452', advertise: '[::1]:5452' } })
  // Port 0 stays any free port; no advertise stays none.
  expect(workerNode({ ...cluster, link: { listen: '127.0.0.1:0' } }, 2).link).toEqual({ listen: '127.0.0.1:0' })
})
