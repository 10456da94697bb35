// Session lifecycle: login, restore from a stored token, logout.
import { api } from './client.js'
import { session, setToken, setIdentity, setTimezones, clearSession } from '../store/session.js'

async function loadTimezones() {
  try {
    const res = await api.tenants()
    setTimezones(res?.items)
  } catch {
    // optional: without it, dates are read in Asia/Shanghai (the API's default zone)
  }
}

export async function login(username, password) {
  const res = await api.login(username, password)
  setToken(res.token)
  setIdentity(res)
  await loadTimezones()
  return res
}

let restoring = null
/** Make sure operator and tenants are loaded for the stored token. */
export function ensureIdentity() {
  if (!session.token) return Promise.resolve(false)
  if (session.operator) return Promise.resolve(true)
  if (!restoring) {
    restoring = (async () => {
      try {
        const me = await api.me()
        setIdentity(me)
        await loadTimezones()
        return true
      } catch (e) {
        if (e?.status === 401) {
          clearSession()
          return false
        }
        throw e
      } finally {
        restoring = null
      }
    })()
  }
  return restoring
}

export async function logout() {
  try {
    if (session.token) await api.logout()
  } catch {
    // the token is dropped locally either way
  }
  clearSession()
}
