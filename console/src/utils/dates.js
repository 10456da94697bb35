// Calendar dates ("YYYY-MM-DD") in a tenant's time zone, and display of the
// API's UTC-millisecond timestamps in that zone.

export const DEFAULT_TIMEZONE = 'Asia/Shanghai'

function parts(date, timeZone, withTime) {
  const fmt = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    ...(withTime ? { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' } : {}),
  })
  const out = {}
  for (const p of fmt.formatToParts(date)) out[p.type] = p.value
  return out
}

function safeZone(timeZone) {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone })
    return timeZone
  } catch {
    return DEFAULT_TIMEZONE
  }
}

/** Today's calendar date in `timeZone`. */
export function todayIn(timeZone = DEFAULT_TIMEZONE, now = new Date()) {
  const p = parts(now, safeZone(timeZone), false)
  return `${p.year}-${p.month}-${p.day}`
}

/** "2026-11-30" + 1 → "2026-12-01" (pure calendar arithmetic). */
export function addDays(ymd, days) {
  const [y, m, d] = ymd.split('-').map(Number)
  const t = new Date(Date.UTC(y, m - 1, d + days))
  const mm = String(t.getUTCMonth() + 1).padStart(2, '0')
  const dd = String(t.getUTCDate()).padStart(2, '0')
  return `${t.getUTCFullYear()}-${mm}-${dd}`
}

/** First day of the month of `ymd`. */
export function monthStart(ymd) {
  return `${ymd.slice(0, 7)}-01`
}

/** Inclusive [first, last] range of the last `n` days ending today in `timeZone`. */
export function lastNDays(n, timeZone = DEFAULT_TIMEZONE) {
  const today = todayIn(timeZone)
  return [addDays(today, -(n - 1)), today]
}

/** A calendar date as a local Date (for the date picker, which works in local time). */
export function ymdToLocalDate(ymd) {
  const [y, m, d] = ymd.split('-').map(Number)
  return new Date(y, m - 1, d)
}

/** A local Date (from the date picker) as a calendar date. */
export function localDateToYmd(date) {
  const mm = String(date.getMonth() + 1).padStart(2, '0')
  const dd = String(date.getDate()).padStart(2, '0')
  return `${date.getFullYear()}-${mm}-${dd}`
}

/** UTC milliseconds → "YYYY-MM-DD HH:mm:ss" in `timeZone`. */
export function formatTimestamp(ms, timeZone = DEFAULT_TIMEZONE) {
  if (ms === null || ms === undefined || ms === '') return '—'
  const n = Number(ms)
  if (!Number.isFinite(n)) return '—'
  const p = parts(new Date(n), safeZone(timeZone), true)
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`
}
