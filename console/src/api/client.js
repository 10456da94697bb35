// Thin fetch wrapper for the siyu API (same origin, under /v1).
import { session } from '../store/session.js'
import { t } from '../i18n/index.js'

export class ApiError extends Error {
  constructor({ status, code, message, field, requestId, details }) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.field = field || null
    this.requestId = requestId || null
    // Every other member of the error body (e.g. `position` of an expression error, `users` of
    // TAG_IN_USE), whether the server puts it inside `error` or beside it.
    this.details = details || {}
  }
}

let unauthorizedHandler = null
/** Called once per 401 answer to an authenticated request. */
export function onUnauthorized(fn) {
  unauthorizedHandler = fn
}

function buildUrl(path, query) {
  const params = new URLSearchParams()
  // An array value repeats the parameter (map=…&map=…).
  for (const [k, v] of Object.entries(query || {})) {
    for (const x of Array.isArray(v) ? v : [v]) {
      if (x === null || x === undefined || x === '') continue
      params.append(k, String(x))
    }
  }
  const qs = params.toString()
  return qs ? `${path}?${qs}` : path
}

// The error body's extra members: those beside `error` first, those inside it win.
function errorDetails(data) {
  if (!data || typeof data !== 'object') return {}
  const out = {}
  for (const [k, v] of Object.entries(data)) if (k !== 'error') out[k] = v
  if (data.error && typeof data.error === 'object') {
    for (const [k, v] of Object.entries(data.error)) if (!['code', 'message', 'field'].includes(k)) out[k] = v
  }
  return out
}

// `body` is sent as JSON; `raw` ({type, data}: a content type and a string) is sent as it is, e.g.
// a CSV file for the imports.
export async function request(method, path, { query, body, raw, auth = true, tenant = true, signal, notify401 = true } = {}) {
  const headers = { Accept: 'application/json' }
  if (raw !== undefined) headers['Content-Type'] = raw.type
  else if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (auth && session.token) headers.Authorization = `Bearer ${session.token}`
  if (auth && tenant && session.tenantId) headers['X-Siyu-Tenant'] = String(session.tenantId)

  let res
  try {
    res = await fetch(buildUrl(path, query), {
      method,
      headers,
      body: raw !== undefined ? raw.data : body === undefined ? undefined : JSON.stringify(body),
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
    details: errorDetails(data),
  })
  if (res.status === 401 && auth) {
    apiError.handled = true
    if (notify401 && unauthorizedHandler) unauthorizedHandler(apiError)
  }
  throw apiError
}

/** GET a binary resource (an image) with the session's credentials; errors as request(). */
export async function requestBlob(path, { query, signal } = {}) {
  const headers = {}
  if (session.token) headers.Authorization = `Bearer ${session.token}`
  if (session.tenantId) headers['X-Siyu-Tenant'] = String(session.tenantId)
  let res
  try {
    res = await fetch(buildUrl(path, query), { headers, signal, cache: 'no-store' })
  } catch (e) {
    if (e?.name === 'AbortError') throw e
    throw new ApiError({ status: 0, code: 'NETWORK', message: t('errors.network') })
  }
  if (res.ok) return res.blob()
  let err = null
  try {
    err = (await res.json())?.error || null
  } catch {
    err = null
  }
  const apiError = new ApiError({
    status: res.status,
    code: err?.code || `HTTP_${res.status}`,
    message: err?.message || t('errors.http', { status: res.status }),
    field: err?.field,
    requestId: res.headers.get('X-Request-Id'),
  })
  if (res.status === 401) {
    apiError.handled = true
    if (unauthorizedHandler) unauthorizedHandler(apiError)
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
  // channel codes (渠道码): a channel's codes, making one, and their images as Blobs
  channelCodes: (id) => request('GET', `/v1/channels/${encodeURIComponent(id)}/codes`),
  makeChannelCode: (id, body) =>
    request('POST', `/v1/channels/${encodeURIComponent(id)}/codes`, { body }),
  channelCodeImage: (id, kind, format, query) =>
    requestBlob(`/v1/channels/${encodeURIComponent(id)}/codes/${encodeURIComponent(kind)}.${format}`, { query }),
  // people
  people: ({ limit, after }) => request('GET', '/v1/people', { query: { limit, after } }),
  personByExternalId: (externalId) => request('GET', '/v1/people', { query: { external_id: externalId } }),
  person: (id) => request('GET', `/v1/people/${encodeURIComponent(id)}`),
  timeline: ({ personId, limit, before }) =>
    request('GET', `/v1/people/${encodeURIComponent(personId)}/timeline`, { query: { limit, before } }),
  // identity (OneID): ids, merges and the links held for review
  personIdentity: (id) => request('GET', `/v1/people/${encodeURIComponent(id)}/identity`),
  resolveId: (id) => request('GET', '/v1/identity/resolve', { query: { id } }),
  linkIds: (body) => request('POST', '/v1/identity/links', { body }),
  unmerge: (mergeId, body) =>
    request('POST', `/v1/identity/merges/${encodeURIComponent(mergeId)}/unmerge`, { body }),
  quarantine: () => request('GET', '/v1/identity/quarantine'),
  approveQuarantine: (quarantineId, body) =>
    request('POST', `/v1/identity/quarantine/${encodeURIComponent(quarantineId)}/approve`, { body }),
  rejectQuarantine: (quarantineId, body) =>
    request('POST', `/v1/identity/quarantine/${encodeURIComponent(quarantineId)}/reject`, { body }),
  verifyIdentity: () => request('POST', '/v1/identity/verify', { body: {} }),
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
  // audience: tags, segments, the live count, RFM, lifecycle, KOC (docs/api.md, "Audience")
  tags: () => request('GET', '/v1/tags'),
  createTag: (body) => request('POST', '/v1/tags', { body }),
  deleteTag: (id) => request('DELETE', `/v1/tags/${encodeURIComponent(id)}`),
  // body: {add:[ids]} | {remove:[ids]} | {segment_id}
  tagPeople: (id, body) => request('POST', `/v1/tags/${encodeURIComponent(id)}/people`, { body }),
  // csv: the file's text (header row; tag, external_id | person_id); map: ["field=column", …]
  // → {rows, created, updated, unchanged, failed, errors:[{line, code, field, message}]}
  importTags: (csv, map = []) =>
    request('POST', '/v1/imports/tags', { query: { map }, raw: { type: 'text/csv; charset=utf-8', data: csv } }),
  segments: () => request('GET', '/v1/segments'),
  segment: (id) => request('GET', `/v1/segments/${encodeURIComponent(id)}`),
  // body: {name, expression} | {name, json}
  createSegment: (body) => request('POST', '/v1/segments', { body }),
  deleteSegment: (id) => request('DELETE', `/v1/segments/${encodeURIComponent(id)}`),
  segmentMembers: (id, { limit, after }) =>
    request('GET', `/v1/segments/${encodeURIComponent(id)}/members`, { query: { limit, after } }),
  segmentMembersCsv: (id) => requestBlob(`/v1/segments/${encodeURIComponent(id)}/members.csv`),
  // body: {expression} | {json}; signal: abort a count the builder no longer needs
  audienceCount: (body, { signal } = {}) => request('POST', '/v1/audience/count', { body, signal }),
  rfm: () => request('GET', '/v1/audience/rfm'),
  lifecycle: () => request('GET', '/v1/audience/lifecycle'),
  koc: ({ limit, topPercent }) => request('GET', '/v1/audience/koc', { query: { limit, top_percent: topPercent } }),
  personAudience: (id) => request('GET', `/v1/people/${encodeURIComponent(id)}/audience`),
  // audience settings: RFM thresholds and lifecycle rules (PUT: admin; the whole object)
  audienceSettings: () => request('GET', '/v1/audience/settings'),
  putAudienceSettings: (body) => request('PUT', '/v1/audience/settings', { body }),
  // rebuilds the audience from the store and compares it with the live one (admin)
  verifyAudience: () => request('POST', '/v1/audience/verify', { body: {} }),
  // segment snapshots: a segment's members frozen under a name, kept when the segment changes
  makeSegmentSnapshot: (id, body) => request('POST', `/v1/segments/${encodeURIComponent(id)}/snapshots`, { body }),
  segmentSnapshots: (id) => request('GET', `/v1/segments/${encodeURIComponent(id)}/snapshots`),
  snapshotMembersCsv: (id) => requestBlob(`/v1/segment-snapshots/${encodeURIComponent(id)}/members.csv`),
}
