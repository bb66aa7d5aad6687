import type { ActionDef } from '../types.ts'
import { addHeaders } from './add-headers.ts'
import { basicAuth } from './basic-auth.ts'
import { circuitBreaker } from './circuit-breaker.ts'
import { closeConnection } from './close-connection.ts'
import { compressResponse } from './compress-response.ts'
import { customResponse } from './custom-response.ts'
import { deny } from './deny.ts'
import { forwardExternal } from './forward-external.ts'
import { forwardInternal } from './forward-internal.ts'
import { httpRequest } from './http-request.ts'
import { jwtValidation } from './jwt-validation.ts'
import { log } from './log.ts'
import { owaspCrsRequest } from './owasp-crs-request.ts'
import { owaspCrsResponse } from './owasp-crs-response.ts'
import { oauthAction } from './oauth.ts'
import { openidConnect } from './openid-connect.ts'
import { rateLimit } from './rate-limit.ts'
import { redirect } from './redirect.ts'
import { removeHeaders } from './remove-headers.ts'
import { requestBodyFindReplace } from './request-body-find-replace.ts'
import { responseBodyFindReplace } from './response-body-find-replace.ts'
import { restrictIps } from './restrict-ips.ts'
import { setVars } from './set-vars.ts'
import { sseFindReplace } from './sse-find-replace.ts'
import { terminateTls } from './terminate-tls.ts'
import { urlRewrite } from './url-rewrite.ts'
import { verifyWebhook } from './verify-webhook.ts'

/** Every traffic-policy action warren knows. The schema, JSON Schema and docs derive from this list. */
export const ACTIONS: readonly ActionDef[] = [
  customResponse,
  forwardExternal,
  deny,
  redirect,
  urlRewrite,
  addHeaders,
  removeHeaders,
  setVars,
  log,
  basicAuth,
  restrictIps,
  rateLimit,
  compressResponse,
  circuitBreaker,
  closeConnection,
  forwardInternal,
  httpRequest,
  requestBodyFindReplace,
  responseBodyFindReplace,
  sseFindReplace,
  terminateTls,
  verifyWebhook,
  jwtValidation,
  owaspCrsRequest,
  owaspCrsResponse,
  oauthAction,
  openidConnect,
] as unknown as readonly ActionDef[]

export const ACTIONS_BY_TYPE: ReadonlyMap<string, ActionDef> = new Map(ACTIONS.map((a) => [a.type, a]))
