// Behaviour events on a person's timeline: an icon, a colour and a one-line summary of the
// properties per standard type (docs/api.md, "Events"). Labels: `eventTypes.<type>` in i18n.
import {
  Document,
  View,
  ShoppingCart,
  Wallet,
  RefreshLeft,
  Share,
  Present,
  CirclePlus,
  Remove,
  ChatDotRound,
  ChatLineRound,
  Reading,
  Aim,
  Star,
  StarFilled,
  Postcard,
  Ticket,
  Discount,
  VideoPlay,
  CollectionTag,
} from '@element-plus/icons-vue'
import { formatFen, formatInt, toBigInt } from './format.js'

export const CUSTOM_PREFIX = 'custom:'

const GREEN = '#07c160' // orders
const BLUE = '#409eff' // browsing and cart
const TEAL = '#04a09b' // joining: scans, follows, WeCom, groups
const PURPLE = '#7c6fe0' // sharing, invitations, live
const GOLD = '#d19a12' // membership and coupons
const ORANGE = '#e6a23c' // leaving
const RED = '#f56c6c' // refunds
const GREY = '#909399' // reading

// type → [icon, dot colour]
const STANDARD = {
  page_view: [Document, GREY],
  product_view: [View, BLUE],
  add_to_cart: [ShoppingCart, BLUE],
  order_paid: [Wallet, GREEN],
  order_refunded: [RefreshLeft, RED],
  share: [Share, PURPLE],
  invite_accepted: [Present, PURPLE],
  contact_added: [CirclePlus, TEAL],
  contact_removed: [Remove, ORANGE],
  group_joined: [ChatDotRound, TEAL],
  group_left: [ChatLineRound, ORANGE],
  message_read: [Reading, GREY],
  qr_scanned: [Aim, TEAL],
  follow: [Star, TEAL],
  unfollow: [StarFilled, ORANGE],
  member_bound: [Postcard, GOLD],
  coupon_received: [Ticket, GOLD],
  coupon_used: [Discount, GOLD],
  live_watch: [VideoPlay, PURPLE],
}

export const STANDARD_TYPES = Object.keys(STANDARD)

export function isCustomType(type) {
  return typeof type === 'string' && type.startsWith(CUSTOM_PREFIX)
}

export function eventIcon(type) {
  return STANDARD[type]?.[0] || CollectionTag
}

export function eventColor(type) {
  return STANDARD[type]?.[1] || GREY
}

/** The label of a type: the i18n label of a standard type, else its name (custom: without the prefix). */
export function eventLabel(type, t, te) {
  if (isCustomType(type)) return type.slice(CUSTOM_PREFIX.length)
  const key = `eventTypes.${type}`
  return te(key) ? t(key) : String(type ?? '')
}

function str(v, max = 48) {
  if (v === null || v === undefined) return ''
  const s = typeof v === 'string' ? v : JSON.stringify(v)
  const chars = [...s]
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : s
}

function has(p, k) {
  return p && p[k] !== undefined && p[k] !== null && p[k] !== ''
}

function money(v) {
  return toBigInt(v) === null ? str(v) : formatFen(v)
}

function count(v) {
  return toBigInt(v) === null ? str(v) : formatInt(v)
}

/** "12 分钟" for whole minutes (rounded), "45 秒" under a minute. */
function watched(seconds, t) {
  const s = toBigInt(seconds)
  if (s === null) return str(seconds)
  if (s < 60n) return t('timeline.summary.watchedSeconds', { n: formatInt(s) })
  return t('timeline.summary.watchedMinutes', { n: formatInt((s + 30n) / 60n) })
}

/**
 * A compact summary of an event's properties as a list of short strings,
 * e.g. add_to_cart → ["CL-HANDWASH-500 × 2", "单价 ¥16.90"].
 */
export function eventSummary(event, t) {
  const p = event?.properties && typeof event.properties === 'object' ? event.properties : {}
  const out = []
  const add = (cond, text) => cond && out.push(text)
  const S = (key, v) => t(`timeline.summary.${key}`, { v })
  switch (event?.type) {
    case 'page_view':
      add(has(p, 'title'), str(p.title))
      add(has(p, 'path'), str(p.path, 64))
      break
    case 'product_view':
      add(has(p, 'sku'), S('sku', str(p.sku)))
      add(has(p, 'spu'), S('spu', str(p.spu)))
      add(has(p, 'price_fen'), S('price', money(p.price_fen)))
      break
    case 'add_to_cart':
      add(has(p, 'sku'), t('timeline.summary.cartLine', { sku: str(p.sku), qty: count(p.quantity ?? 1) }))
      add(has(p, 'price_fen'), S('unitPrice', money(p.price_fen)))
      break
    case 'order_paid':
    case 'order_refunded':
      add(has(p, 'order_no'), S('order', str(p.order_no)))
      add(has(p, 'amount_fen'), S('amount', money(p.amount_fen)))
      add(has(p, 'reason'), S('reason', str(p.reason)))
      break
    case 'share':
      add(has(p, 'content'), S('content', str(p.content)))
      add(has(p, 'target'), S('target', str(p.target)))
      break
    case 'invite_accepted':
      add(has(p, 'inviter_id'), S('inviter', str(p.inviter_id)))
      add(has(p, 'campaign'), S('campaign', str(p.campaign)))
      break
    case 'contact_added':
    case 'contact_removed':
      add(has(p, 'user_id'), S('wecomUser', str(p.user_id)))
      break
    case 'group_joined':
    case 'group_left':
      add(has(p, 'chat_id'), S('chat', str(p.chat_id)))
      break
    case 'message_read':
      add(has(p, 'message_id'), S('message', str(p.message_id)))
      break
    case 'qr_scanned':
      add(has(p, 'scene'), S('scene', str(p.scene)))
      break
    case 'follow':
    case 'unfollow':
      add(has(p, 'app_id'), S('app', str(p.app_id)))
      add(has(p, 'scene'), S('scene', str(p.scene)))
      break
    case 'member_bound':
      add(has(p, 'member_no'), S('memberNo', str(p.member_no)))
      add(has(p, 'level'), S('level', str(p.level)))
      break
    case 'coupon_received':
    case 'coupon_used':
      add(has(p, 'coupon_id'), S('coupon', str(p.coupon_id)))
      add(has(p, 'order_no'), S('order', str(p.order_no)))
      break
    case 'live_watch':
      add(has(p, 'live_id'), S('live', str(p.live_id)))
      add(has(p, 'seconds'), watched(p.seconds, t))
      break
    default: {
      // custom (and types this console does not know yet): the first few properties as sent
      const keys = Object.keys(p)
      for (const k of keys.slice(0, 3)) out.push(`${str(k, 24)}: ${str(p[k], 32)}`)
      if (keys.length > 3) out.push(t('timeline.summary.more', { n: keys.length - 3 }))
    }
  }
  return out
}
