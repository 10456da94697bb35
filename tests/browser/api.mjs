// What the browser tests share: calling siyu's API directly (to learn the figures the console
// must show, or to make fixtures) and loading playwright-core.

export const BASE = (process.env.SIYU_URL || '').replace(/\/+$/, '')

// One API call; throws with the method, path, status and siyu's error code and message.
export async function call(method, path, { token, tenant, body } = {}) {
  const headers = { Accept: 'application/json' }
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  if (token) headers.Authorization = `Bearer ${token}`
  if (tenant !== undefined && tenant !== null) headers['X-Siyu-Tenant'] = String(tenant)
  let res
  try {
    res = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  } catch (e) {
    throw new Error(`${method} ${BASE}${path}: cannot reach the server (${e.cause?.code || e.message}); is siyu serve running at SIYU_URL?`)
  }
  const text = await res.text()
  let data
  try {
    data = text ? JSON.parse(text) : null
  } catch {
    throw new Error(`${method} ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 200)}`)
  }
  if (!res.ok) {
    const e = data?.error
    throw new Error(`${method} ${path}: HTTP ${res.status} ${e?.code || ''} ${e?.message || text.slice(0, 200)}`)
  }
  return data
}

// playwright-core's chromium, with a clear message when the test's npm packages are missing.
export async function loadChromium() {
  try {
    return (await import('playwright-core')).chromium
  } catch (e) {
    throw new Error(`playwright-core is not installed: run \`npm ci --prefix tests/browser\` first (${e.message})`)
  }
}
