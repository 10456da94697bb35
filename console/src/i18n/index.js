import { createI18n } from 'vue-i18n'
import dayjs from 'dayjs'
import 'dayjs/locale/zh-cn'
import elZhCn from 'element-plus/es/locale/lang/zh-cn'
import elEn from 'element-plus/es/locale/lang/en'
import zhCN from './zh-CN.js'
import en from './en.js'

export const LOCALES = ['zh-CN', 'en']
export const DEFAULT_LOCALE = 'zh-CN'
const STORAGE_KEY = 'siyu.locale'

const elementLocales = { 'zh-CN': elZhCn, en: elEn }
const dayjsLocales = { 'zh-CN': 'zh-cn', en: 'en' }

function storedLocale() {
  try {
    const v = localStorage.getItem(STORAGE_KEY)
    return LOCALES.includes(v) ? v : DEFAULT_LOCALE
  } catch {
    return DEFAULT_LOCALE
  }
}

export const i18n = createI18n({
  legacy: false,
  globalInjection: true,
  locale: storedLocale(),
  fallbackLocale: DEFAULT_LOCALE,
  messages: { 'zh-CN': zhCN, en },
  // Messages are plain text rendered with {{ }}, never v-html.
  warnHtmlMessage: false,
})

function apply(locale) {
  document.documentElement.lang = locale
  document.title = i18n.global.t('app.title')
  dayjs.locale(dayjsLocales[locale] || 'en')
}
apply(i18n.global.locale.value)

export function currentLocale() {
  return i18n.global.locale.value
}

export function setLocale(locale) {
  if (!LOCALES.includes(locale)) return
  i18n.global.locale.value = locale
  try {
    localStorage.setItem(STORAGE_KEY, locale)
  } catch {
    // storage unavailable: the choice lasts for this page only
  }
  apply(locale)
}

export function elementLocale(locale) {
  return elementLocales[locale] || elZhCn
}

export const t = (...args) => i18n.global.t(...args)
