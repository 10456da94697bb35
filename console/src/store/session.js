// The console session: token, operator, tenants and the tenant in use.
import { reactive, computed } from 'vue'
import { DEFAULT_TIMEZONE } from '../utils/dates.js'

const TOKEN_KEY = 'siyu.token'
const TENANT_KEY = 'siyu.tenant'

function read(key) {
  try {
    return localStorage.getItem(key)
  } catch {
    return null
  }
}
function write(key, value) {
  try {
    if (value === null || value === undefined || value === '') localStorage.removeItem(key)
    else localStorage.setItem(key, String(value))
  } catch {
    // storage unavailable
  }
}

export const session = reactive({
  token: read(TOKEN_KEY) || '',
  operator: null,
  tenants: [],
  tenantId: read(TENANT_KEY) || null, // kept as a string; compared with String(id)
  timezones: {}, // tenant id → IANA zone, from GET /v1/tenants
})

export const currentTenant = computed(
  () => session.tenants.find((t) => String(t.id) === String(session.tenantId)) || null,
)
export const currentRole = computed(() => currentTenant.value?.role || null)
export const currentTimezone = computed(
  () => (session.tenantId && session.timezones[String(session.tenantId)]) || DEFAULT_TIMEZONE,
)
export const isAdmin = computed(() => currentRole.value === 'admin')
export const canWrite = computed(() => ['admin', 'operator'].includes(currentRole.value))

export function setToken(token) {
  session.token = token || ''
  write(TOKEN_KEY, session.token)
}

/** Apply a login / me answer: operator + tenants; keep the chosen tenant if still allowed. */
export function setIdentity({ operator, tenants }) {
  session.operator = operator || null
  session.tenants = Array.isArray(tenants) ? tenants : []
  const keep = session.tenants.find((t) => String(t.id) === String(session.tenantId))
  setTenant(keep ? keep.id : session.tenants[0]?.id ?? null)
}

export function setTenant(id) {
  session.tenantId = id === null || id === undefined ? null : String(id)
  write(TENANT_KEY, session.tenantId)
}

export function setTimezones(items) {
  const map = {}
  for (const t of items || []) if (t && t.timezone) map[String(t.id)] = t.timezone
  session.timezones = map
}

export function clearSession() {
  setToken('')
  session.operator = null
  session.tenants = []
  session.timezones = {}
}
