import { toJsonSchema } from '@valibot/to-json-schema'
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import * as v from 'valibot'
import { EndpointSpec, PolicyFileSpec } from '../config/schema/v1/endpoint.ts'
import { TrafficPolicySpec } from '../config/schema/v1/policy.ts'
import { ServerConfigSpec } from '../config/schema/v1/server.ts'

/** Endpoint schema as editors should see it: `traffic_policy` typed instead of free-form. */
const EditorEndpoint = v.strictObject({ ...EndpointSpec.entries, traffic_policy: v.optional(v.union([v.string(), TrafficPolicySpec])) })
const EditorPolicyFile = v.union([v.strictObject({ ...PolicyFileSpec.entries, endpoints: v.array(EditorEndpoint) }), EditorEndpoint])

/** The JSON Schema of a policies file or of warren.yaml, derived from the valibot schemas. */
export function jsonSchema(kind: 'policy' | 'server'): object {
  const schema = kind === 'policy' ? EditorPolicyFile : ServerConfigSpec
  return {
    $id: `https://warren.localhost/schema/${kind}.json`,
    title: kind === 'policy' ? 'warren policies file' : 'warren server config',
    ...toJsonSchema(schema, { errorMode: 'ignore' }),
  }
}

export function schemaCommand(args: string[]): number {
  const { values, positionals } = parseArgs({ args, options: { out: { type: 'string' } }, allowPositionals: true, strict: true })
  const kind = positionals[0] ?? 'policy'
  if (kind !== 'policy' && kind !== 'server') {
    process.stderr.write('usage: warren schema [policy|server] [--out FILE]\n')
    return 2
  }
  const text = JSON.stringify(jsonSchema(kind), null, 2) + '\n'
  if (values.out) writeFileSync(values.out, text)
  else process.stdout.write(text)
  return 0
}
