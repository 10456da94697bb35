// The audience vocabulary (RFM classes, lifecycle stages) and the segment builder's model: a tree
// of groups and conditions that turns into the JSON form of the expression language
// (src/domain/audience/expr.h, ExpressionFromJson) and back.
//
// JSON form, one key naming each node:
//   {"and":[…2+]} {"or":[…2+]} {"not":{…}}
//   {"tag":"会员"} | {"tag":"会员/金卡"}   {"rfm":"important_value"}   {"stage":"dormant"}
//   {"first_channel":12} {"last_channel":12}   {"touchpoint":"wecom"}   {"tier":"gold"}
//   {"bought":{"sku"|"category":"…","window_days":30}}                 (yes/no, args optional)
//   {"orders"|"gmv":{["sku"|"category"],["window_days"]},"op":">=","value":2}
//   {"events":{"type":"page_view",["window_days"]},"op":">=","value":1}
//   {"event_sum":{"type":"…","property":"…",["window_days"]},"op":">=","value":1}
//   {"last_order_days":{},"op":">","value":90}   {"first_seen_days":{},"op":"<=","value":30}
//   {"first_event_days"|"last_event_days":{"type":"page_view"},"op":">","value":30}
//     (days since the first / last event of the type; no value without one)
import { toBigInt } from './format.js'

// RFM classes in the matrix's order: rows M high (重要) / M low (一般); columns by R and F.
export const RFM_CLASSES = [
  'important_value',
  'important_develop',
  'important_keep',
  'important_retain',
  'general_value',
  'general_develop',
  'general_keep',
  'general_retain',
]
// r: recency high (bought recently), f: frequency high, m: monetary high
export const RFM_SCORES = {
  important_value: { r: true, f: true, m: true },
  important_develop: { r: true, f: false, m: true },
  important_keep: { r: false, f: true, m: true },
  important_retain: { r: false, f: false, m: true },
  general_value: { r: true, f: true, m: false },
  general_develop: { r: true, f: false, m: false },
  general_keep: { r: false, f: true, m: false },
  general_retain: { r: false, f: false, m: false },
}
export const STAGES = ['prospect', 'new', 'repeat', 'active', 'dormant', 'churned', 'recalled']
export const TOUCHPOINTS = ['official_account', 'mini_program', 'wecom', 'group', 'offline', 'other']
export const OPS = ['>=', '>', '=', '!=', '<', '<=']
export const MAX_WINDOW_DAYS = 3650
export const WINDOW_PRESETS = [7, 30, 90, 180, 365]

// Condition kinds the builder offers, and how each is edited.
export const COND_KINDS = [
  'tag',
  'rfm',
  'stage',
  'channel',
  'touchpoint',
  'tier',
  'orders',
  'gmv',
  'bought',
  'events',
  'event_sum',
  'last_order_days',
  'first_seen_days',
  'first_event_days',
  'last_event_days',
]
const NUMERIC = new Set([
  'orders',
  'gmv',
  'events',
  'event_sum',
  'last_order_days',
  'first_seen_days',
  'first_event_days',
  'last_event_days',
])
const ITEMS = new Set(['orders', 'gmv', 'bought'])
const WINDOWED = new Set(['orders', 'gmv', 'bought', 'events', 'event_sum'])
// Kinds whose argument is an event type.
const EVENT_TYPED = new Set(['events', 'event_sum', 'first_event_days', 'last_event_days'])
export const isNumericKind = (k) => NUMERIC.has(k)
export const hasEventType = (k) => EVENT_TYPED.has(k)
export const hasItemFilter = (k) => ITEMS.has(k)
export const hasWindow = (k) => WINDOWED.has(k)

let uidSeq = 0
const nextUid = () => `n${++uidSeq}`

/** A new condition of `kind` with sensible defaults. */
export function newCondition(kind = 'tag') {
  const c = {
    uid: nextUid(),
    type: 'cond',
    kind,
    not: false,
    name: '', // tag name ("group/name"), touchpoint, tier
    key: '', // rfm class / stage key
    channelSide: 'first', // first | last
    channelId: null,
    filter: 'any', // any | sku | category
    item: '',
    windowDays: 0, // 0: all time
    eventType: '',
    property: '',
    op: '>=',
    value: 1,
  }
  if (kind === 'rfm') c.key = 'important_value'
  if (kind === 'stage') c.key = 'active'
  if (kind === 'orders') c.value = 2
  if (kind === 'gmv') c.value = 100000 // ¥1,000.00 in fen
  if (kind === 'last_order_days') {
    c.op = '>'
    c.value = 90
  }
  if (kind === 'first_seen_days') {
    c.op = '<='
    c.value = 30
  }
  if (kind === 'first_event_days' || kind === 'last_event_days') {
    c.op = '>'
    c.value = 30
  }
  if (kind === 'events' || kind === 'event_sum') c.windowDays = 30
  return c
}

export function newGroup(op = 'and', children = []) {
  return { uid: nextUid(), type: 'group', op, not: false, children }
}

/** Change a condition's kind in place, keeping its uid and NOT. */
export function resetCondition(cond, kind) {
  const fresh = newCondition(kind)
  Object.assign(cond, fresh, { uid: cond.uid, not: cond.not })
}

const isInt = (v) => typeof v === 'number' && Number.isSafeInteger(v)

// Why a condition cannot be sent yet (a key of audience.builder.incomplete.*), or null.
export function conditionProblem(c) {
  switch (c.kind) {
    case 'tag':
    case 'touchpoint':
    case 'tier':
      return String(c.name || '').trim() ? null : 'value'
    case 'rfm':
    case 'stage':
      return c.key ? null : 'value'
    case 'channel':
      return isInt(c.channelId) && c.channelId > 0 ? null : 'channel'
    default:
      break
  }
  if (hasItemFilter(c.kind) && c.filter !== 'any' && !String(c.item || '').trim()) return 'item'
  if (hasEventType(c.kind) && !String(c.eventType || '').trim()) return 'eventType'
  if (c.kind === 'event_sum' && !String(c.property || '').trim()) return 'property'
  if (hasWindow(c.kind) && c.windowDays !== 0 && !(isInt(c.windowDays) && c.windowDays >= 1 && c.windowDays <= MAX_WINDOW_DAYS)) {
    return 'window'
  }
  if (isNumericKind(c.kind) && !isInt(c.value)) return 'number'
  return null
}

function conditionJson(c) {
  switch (c.kind) {
    case 'tag':
    case 'touchpoint':
    case 'tier':
      return { [c.kind]: String(c.name).trim() }
    case 'rfm':
    case 'stage':
      return { [c.kind]: c.key }
    case 'channel':
      return { [c.channelSide === 'last' ? 'last_channel' : 'first_channel']: c.channelId }
    default:
      break
  }
  const args = {}
  if (hasEventType(c.kind)) args.type = String(c.eventType).trim()
  if (c.kind === 'event_sum') args.property = String(c.property).trim()
  if (hasItemFilter(c.kind) && c.filter !== 'any') args[c.filter] = String(c.item).trim()
  if (hasWindow(c.kind) && c.windowDays) args.window_days = c.windowDays
  const out = { [c.kind]: args }
  if (isNumericKind(c.kind)) {
    out.op = c.op
    out.value = c.value
  }
  return out
}

/**
 * The JSON form of a builder tree.
 * → { json, incomplete: [uids], empty: bool, paths: [[path, uid]] }; `json` is null when the tree
 * has no condition or some condition is incomplete. `paths` maps each node's JSON path (relative
 * to the root, e.g. ".and[1].not") to its uid, to point at the condition an error names.
 */
export function treeToJson(root) {
  const incomplete = []
  const paths = []
  let count = 0
  function walk(node, path) {
    paths.push([path, node.uid]) // pre-order: a deeper node at the same path comes later
    let inner
    let innerPath = path
    const wrap = node.not
    if (wrap) innerPath = `${path}.not`
    if (node.type === 'group') {
      const kids = node.children.filter((k) => k.type === 'cond' || hasCondition(k))
      if (kids.length === 0) return null
      if (kids.length === 1) {
        inner = walk(kids[0], innerPath)
      } else {
        const arr = kids.map((k, i) => walk(k, `${innerPath}.${node.op}[${i}]`))
        inner = arr.some((x) => x === null) ? null : { [node.op]: arr }
      }
    } else {
      count++
      const problem = conditionProblem(node)
      if (problem) {
        incomplete.push(node.uid)
        inner = null
      } else {
        inner = conditionJson(node)
      }
    }
    if (inner === null) return null
    return wrap ? { not: inner } : inner
  }
  const json = walk(root, '')
  return { json: incomplete.length || count === 0 ? null : json, incomplete, empty: count === 0, paths }
}

function hasCondition(node) {
  if (node.type === 'cond') return true
  return node.children.some(hasCondition)
}

/** The builder node an error's `field` (e.g. "expression.and[1].window_days") points at, or null. */
export function nodeForField(field, paths) {
  if (!field || !paths?.length) return null
  // Drop the root name ("expression", "json", "rule"): paths are relative to the root.
  const m = /^[A-Za-z_]+(.*)$/.exec(String(field))
  const rel = m ? m[1] : ''
  let best = null
  for (const [p, uid] of paths) {
    if ((rel === p || rel.startsWith(`${p}.`) || rel.startsWith(`${p}[`)) && (best === null || p.length >= best[0].length)) {
      best = [p, uid]
    }
  }
  return best ? best[1] : null
}

/**
 * A builder tree from the JSON form (as POST /v1/audience/count answers it); throws on a node
 * the builder cannot show (then the expression stays in text mode).
 */
export function jsonToTree(json) {
  const node = fromJson(json)
  if (node.type === 'group' && !node.not) return node
  return newGroup('and', [node])
}

function fromJson(v) {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a condition')
  const keys = Object.keys(v).filter((k) => k !== 'op' && k !== 'value')
  if (keys.length !== 1) throw new Error('not a condition')
  const key = keys[0]
  const head = v[key]
  if (key === 'and' || key === 'or') {
    if (!Array.isArray(head)) throw new Error('bad group')
    return newGroup(key, head.map(fromJson))
  }
  if (key === 'not') {
    const inner = fromJson(head)
    if (!inner.not) {
      inner.not = true
      return inner
    }
    const g = newGroup('and', [inner])
    g.not = true
    return g
  }
  if (key === 'first_channel' || key === 'last_channel') {
    const c = newCondition('channel')
    c.channelSide = key === 'first_channel' ? 'first' : 'last'
    c.channelId = Number(head)
    return c
  }
  if (!COND_KINDS.includes(key)) throw new Error(`unknown condition ${key}`)
  const c = newCondition(key)
  if (key === 'tag' || key === 'touchpoint' || key === 'tier') {
    c.name = String(head)
    return c
  }
  if (key === 'rfm' || key === 'stage') {
    c.key = String(head)
    return c
  }
  const args = head && typeof head === 'object' ? head : {}
  c.filter = 'any'
  c.item = ''
  if (typeof args.sku === 'string') {
    c.filter = 'sku'
    c.item = args.sku
  } else if (typeof args.category === 'string') {
    c.filter = 'category'
    c.item = args.category
  }
  c.windowDays = Number.isSafeInteger(args.window_days) ? args.window_days : 0
  if (typeof args.type === 'string') c.eventType = args.type
  if (typeof args.property === 'string') c.property = args.property
  if (isNumericKind(key)) {
    c.op = OPS.includes(v.op) ? v.op : v.op === '==' ? '=' : '>='
    const n = toBigInt(v.value)
    if (n === null || n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) throw new Error('value out of range')
    c.value = Number(n)
  }
  return c
}

/** Walk a tree (pre-order). */
export function visit(node, f) {
  f(node)
  if (node.type === 'group') for (const k of node.children) visit(k, f)
}

/** The parent group of the node `uid` (null for the root or none). */
export function findParent(root, uid) {
  let parent = null
  visit(root, (n) => {
    if (n.type === 'group' && n.children.some((k) => k.uid === uid)) parent = n
  })
  return parent
}

/**
 * Where an expression error is, in code points (0-based): the `position` of the error body, or
 * the "at character N (0-based)" the message starts with. null when neither says.
 */
export function errorPosition(err) {
  const p = err?.details?.position
  if (Number.isInteger(p) && p >= 0) return p
  if (p && typeof p === 'object') {
    const c = p.character ?? p.char ?? p.code_point
    if (Number.isInteger(c) && c >= 0) return c
  }
  const m = /at character (\d+)/.exec(String(err?.message || ''))
  return m ? Number(m[1]) : null
}

/** Splits `text` around code point `pos` for highlighting: {before, at, after}. */
export function splitAt(text, pos) {
  const cps = Array.from(String(text ?? ''))
  if (pos === null || pos === undefined || pos < 0) return { before: cps.join(''), at: '', after: '' }
  const i = Math.min(pos, cps.length)
  // past the end (e.g. "expected ')'"): show a marker after the last character
  const at = i < cps.length ? cps[i] : ''
  return { before: cps.slice(0, i).join(''), at, after: cps.slice(i + 1).join(''), end: i >= cps.length }
}

/** "会员/金卡" for a grouped tag, its name otherwise: the form tag("…") resolves unambiguously. */
export function tagRef(tag) {
  if (!tag) return ''
  return tag.group ? `${tag.group}/${tag.name}` : String(tag.name ?? '')
}

/** The expression's error codes the server answers (docs/api.md, "Audience"). */
export const EXPRESSION_ERRORS = new Set(['EXPRESSION_SYNTAX', 'TYPE_MISMATCH', 'WINDOW_OUT_OF_RANGE', 'UNKNOWN_TAG', 'MALFORMED_JSON'])

/** Person ids typed or pasted: digits separated by anything else; duplicates dropped. */
export function parsePersonIds(text) {
  const out = []
  const seen = new Set()
  const bad = []
  for (const tok of String(text ?? '').split(/[\s,，;；、]+/)) {
    if (!tok) continue
    const t = tok.replace(/^#/, '')
    if (!/^\d{1,18}$/.test(t) || /^0+$/.test(t)) {
      bad.push(tok)
      continue
    }
    const n = String(BigInt(t))
    if (!seen.has(n)) {
      seen.add(n)
      out.push(n)
    }
  }
  return { ids: out, bad }
}
