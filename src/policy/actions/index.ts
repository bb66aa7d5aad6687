import type { ActionDef } from '../types.ts'
import { customResponse } from './custom-response.ts'
import { forwardExternal } from './forward-external.ts'

/** Every traffic-policy action warren knows. The schema, JSON Schema and docs derive from this list. */
export const ACTIONS: readonly ActionDef[] = [customResponse, forwardExternal] as unknown as readonly ActionDef[]

export const ACTIONS_BY_TYPE: ReadonlyMap<string, ActionDef> = new Map(ACTIONS.map((a) => [a.type, a]))
