import type { Environment } from '@marcbachmann/cel-js'

/**
 * CEL has no packages: ngrok's `base64.decode(x)` parses as a method call on an identifier. Like
 * cel-js's own `cel.bind`, each namespace is a constant of a private type, and its functions are
 * methods of that type. Returns the type name to use in signatures (`base64.decode` →
 * `'Base64Namespace.decode(string): bytes'`).
 */
export function defineNamespace(env: Environment, name: string): string {
  const typeName = `${name[0]!.toUpperCase()}${name.slice(1).replace(/_(\w)/g, (_m, c: string) => c.toUpperCase())}Namespace`
  const Ctor = { [typeName]: class {} }[typeName]!
  env.registerType(typeName, Ctor)
  env.registerConstant(name, typeName, new Ctor())
  return typeName
}
