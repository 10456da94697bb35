// Thin fetch wrapper for the siyu API (same origin, under /v1).
import { session } from '../store/session.js'
import { t } from '../i18n/index.js'

export class ApiError extends Error {
  constructor({ status, code, message, field, requestId }) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.field = field || null
    this.requestId = requestId || null
  }
}

let unauthorizedHandler = null
/** Called once per 401 answer to an authenticated request. */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn
}

function buildUrl(path, query) {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === '') continue
    params.append(k, String(v))
  }
  const qs = params.toString()
  return qs ? `${path}?${qs}` : path
}

export async function request(method, path, { query, body, auth = true, tenant = true, signal, notify401 = true } = {}) {
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (auth && session.token) headers.Authorization = `Bearer ${session.token}`
  if (auth && tenant && session.tenantId) headers['X-Siyu-Tenant'] = String(session.tenantId)

  let res
  try {
    res = await fetch(buildUrl(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    })
  } catch (e) {
    if (e?.name === 'AbortError') throw e
    throw new ApiError({ status: 0, code: 'NETWORK', message: t('errors.network') })
  }

  const requestId = res.headers.get('X-Request-Id')
  const text = await res.text()
  let data = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = undefined
    }
  }

  if (res.ok) {
    if (data === undefined) {
      throw new ApiError({ status: res.status, code: 'BAD_RESPONSE', message: t('errors.badResponse', { status: res.status }), requestId })
    }
    return data
  }

  const err = data && typeof data === 'object' && data.error ? data.error : null
  const apiError = new ApiError({
    status: res.status,
    code: err?.code || `HTTP_${res.status}`,
    message: err?.message || t('errors.http', { status: res.status }),
    field: err?.field,
    requestId,
  })
  if (res.status === 401 && auth) {
    apiError.handled = true
    if (notify401 && unauthorizedHandler) unauthorizedHandler(apiError)
  }
  throw apiError
}

export const api = {
  // auth
  login: (username, password) =>
    request('POST', '/v1/auth/login', { body: { username, password }, auth: false }),
  // No tenant header: a remembered tenant may no longer be the operator's.
  me: () => request('GET', '/v1/auth/me', { tenant: false, notify401: false }),
  logout: () => request('POST', '/v1/auth/logout', { body: {}, notify401: false }),
  tenants: () => request('GET', '/v1/tenants'),
  // channels
  channels: () => request('GET', '/v1/channels'),
  createChannel: (body) => request('POST', '/v1/channels', { body }),
  // people
  people: ({ limit, after }) => request('GET', '/v1/people', { query: { limit, after } }),
  personByExternalId: (externalId) => request('GET', '/v1/people', { query: { external_id: externalId } }),
  person: (id) => request('GET', `/v1/people/${encodeURIComponent(id)}`),
  timeline: ({ personId, limit, before }) =>
    request('GET', `/v1/people/${encodeURIComponent(personId)}/timeline`, { query: { limit, before } }),
  // events
  eventCatalogue: () => request('GET', '/v1/events/catalogue'),
  // orders
  orders: ({ limit, after, personId }) =>
    request('GET', '/v1/orders', { query: { limit, after, person_id: personId } }),
  // analytics
  overview: ({ from, to, channel }) =>
    request('GET', '/v1/analytics/overview', { query: { from, to, channel } }),
  channelReport: ({ from, to, model }) =>
    request('GET', '/v1/analytics/channels', { query: { from, to, model } }),
  // api keys
  apiKeys: () => request('GET', '/v1/api-keys'),
  createApiKey: (body) => request('POST', '/v1/api-keys', { body }),
  revokeApiKey: (id) => request('DELETE', `/v1/api-keys/${encodeURIComponent(id)}`),
}
