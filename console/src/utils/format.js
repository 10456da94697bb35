// Number formatting done with integer / string math, never floats, so that
// money shown in the console is exactly what the API returned.

const EMPTY = '—'

/** Parse an API integer (number or digit string) to BigInt, or null. */
export function toBigInt(value) {
  if (value === null || value === undefined || value === '') return null
  if (typeof value === 'bigint') return value
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || !Number.isInteger(value)) return null
    return BigInt(value)
  }
  const s = String(value).trim()
  if (!/^-?\d+$/.test(s)) return null
  return BigInt(s)
}

function groupDigits(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/** 1234567 → "1,234,567". */
export function formatInt(value) {
  const n = toBigInt(value)
  if (n === null) return EMPTY
  const neg = n < 0n
  const s = groupDigits((neg ? -n : n).toString())
  return neg ? `-${s}` : s
}

/** Integer fen → "¥1,234.56" (negative: "-¥1,234.56"). */
export function formatFen(value) {
  const n = toBigInt(value)
  if (n === null) return EMPTY
  const neg = n < 0n
  const abs = neg ? -n : n
  const yuan = abs / 100n
  const cents = (abs % 100n).toString().padStart(2, '0')
  const s = `¥${groupDigits(yuan.toString())}.${cents}`
  return neg ? `-${s}` : s
}

/** Round num/den half away from zero to an integer (BigInt); null if den is 0. */
export function divRound(num, den) {
  const a = toBigInt(num)
  const b = toBigInt(den)
  if (a === null || b === null || b === 0n) return null
  const neg = (a < 0n) !== (b < 0n)
  const x = a < 0n ? -a : a
  const y = b < 0n ? -b : b
  const q = (2n * x + y) / (2n * y)
  return neg ? -q : q
}

/** num/den as a decimal string with `digits` fraction digits, e.g. 450/300 → "1.50". */
export function formatRatio(num, den, digits = 2) {
  const scale = 10n ** BigInt(digits)
  const a = toBigInt(num)
  if (a === null) return EMPTY
  const q = divRound(a * scale, den)
  if (q === null) return EMPTY
  const neg = q < 0n
  const abs = neg ? -q : q
  const int = groupDigits((abs / scale).toString())
  const frac = digits > 0 ? '.' + (abs % scale).toString().padStart(digits, '0') : ''
  return (neg ? '-' : '') + int + frac
}

/** num/den as a percentage, e.g. 300/1200 → "25.00%". */
export function formatPercent(num, den, digits = 2) {
  const a = toBigInt(num)
  if (a === null) return EMPTY
  const r = formatRatio(a * 100n, den, digits)
  return r === EMPTY ? EMPTY : `${r}%`
}

/** num/den fen rounded to the nearest fen, as money. */
export function formatFenRatio(num, den) {
  const q = divRound(num, den)
  return q === null ? EMPTY : formatFen(q)
}

/** Float fallbacks (used only when the exact integers are not available). */
export function formatFloatPercent(x, digits = 2) {
  return typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : EMPTY
}
export function formatFloat(x, digits = 2) {
  return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : EMPTY
}
export function formatFloatFen(x) {
  return typeof x === 'number' && Number.isFinite(x) ? formatFen(Math.round(x)) : EMPTY
}

/**
 * Parse a yuan amount typed by a person ("500", "500.5", "1,234.56") to integer fen.
 * Returns null when it is not a non-negative amount with at most 2 decimals.
 */
export function parseYuanToFen(input) {
  const s = String(input ?? '').replace(/[,\s¥]/g, '')
  const m = /^(\d+)(?:\.(\d{0,2}))?$/.exec(s)
  if (!m) return null
  const fen = BigInt(m[1]) * 100n + BigInt((m[2] || '').padEnd(2, '0') || '0')
  if (fen > BigInt(Number.MAX_SAFE_INTEGER)) return null
  return Number(fen)
}

/** Integer fen → plain yuan string for an input box ("500.00"). */
export function fenToYuanInput(value) {
  const n = toBigInt(value)
  if (n === null) return ''
  const abs = n < 0n ? -n : n
  return `${n < 0n ? '-' : ''}${abs / 100n}.${(abs % 100n).toString().padStart(2, '0')}`
}

export { EMPTY }
