// External ids ("openid:<app>:<id>", "phone:+86…", …) split into what the console shows:
// the kind, its scope (app id, corp id, namespace) and the id itself. Grammar: docs/api.md
// (People, Events) and src/domain/identity/external_id.h.

/** Kinds with a readable label (`externalIds.kinds.<kind>` in the i18n files). */
export const ID_KINDS = ['openid', 'unionid', 'external_userid', 'phone', 'member_no', 'custom']

// kinds whose id is "<scope>:<id>"
const SCOPED = new Set(['openid', 'external_userid', 'custom'])

/**
 * "openid:wx1:oAbC" → { raw, kind: 'openid', known: true, scope: 'wx1', value: 'oAbC' }.
 * An unknown kind keeps the whole text as `value` (known: false).
 */
export function parseExternalId(raw) {
  const text = String(raw ?? '')
  const colon = text.indexOf(':')
  if (colon <= 0) return { raw: text, kind: '', known: false, scope: '', value: text }
  const kind = text.slice(0, colon)
  const rest = text.slice(colon + 1)
  if (!ID_KINDS.includes(kind)) return { raw: text, kind, known: false, scope: '', value: text }
  if (SCOPED.has(kind)) {
    const c = rest.indexOf(':')
    if (c > 0) return { raw: text, kind, known: true, scope: rest.slice(0, c), value: rest.slice(c + 1) }
  }
  return { raw: text, kind, known: true, scope: '', value: rest }
}

/** A phone id's number as people read it: "+8613800138000" → "13800138000"; others keep "+". */
export function phoneDisplay(value) {
  const v = String(value ?? '')
  const m = /^\+86(1\d{10})$/.exec(v)
  return m ? m[1] : v
}

/**
 * The number with its middle hidden: "13800138000" → "138****8000",
 * "+447911123456" → "+447****3456". Short numbers keep only their last 2 digits.
 */
export function maskPhone(value) {
  const shown = phoneDisplay(value)
  const plus = shown.startsWith('+') ? '+' : ''
  const digits = plus ? shown.slice(1) : shown
  if (digits.length >= 9) {
    const head = digits.slice(0, 3)
    const tail = digits.slice(-4)
    return `${plus}${head}${'*'.repeat(digits.length - 7)}${tail}`
  }
  if (digits.length <= 2) return shown
  return `${plus}${'*'.repeat(digits.length - 2)}${digits.slice(-2)}`
}
