// Browser test of the siyu console against a running server: the overview, the channel
// report and a person's page.
//
//   npm ci --prefix tests/browser
//   SIYU_URL=http://127.0.0.1:8080 SIYU_USER=admin SIYU_PASSWORD=… \
//     [SIYU_SCREENSHOT=/tmp/overview.png] node --test tests/browser/
//
// The test asks the API for the expected figures itself, then logs in through
// the console's form and checks that the stat cards show exactly those figures; then
// that the channel report's total GMV is the API's, and that a person with orders
// shows that order and their external ids.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { BASE, call, loadChromium } from './api.mjs'

const USER = process.env.SIYU_USER || ''
const PASSWORD = process.env.SIYU_PASSWORD || ''
const SCREENSHOT = process.env.SIYU_SCREENSHOT || ''
const CHROMIUM = process.env.SIYU_CHROMIUM || '/usr/bin/chromium'
const DEFAULT_TIMEZONE = 'Asia/Shanghai'
const USAGE =
  'set SIYU_URL (e.g. http://127.0.0.1:8080, a running `siyu serve`), SIYU_USER and SIYU_PASSWORD; ' +
  'optional SIYU_SCREENSHOT=/path/to.png'

// ---- the same formatting the console uses (integer math only) -------------------
const group = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
function formatInt(v) {
  const n = BigInt(v)
  return n < 0n ? `-${group((-n).toString())}` : group(n.toString())
}
function formatFen(v) {
  const n = BigInt(v)
  const abs = n < 0n ? -n : n
  const s = `¥${group((abs / 100n).toString())}.${(abs % 100n).toString().padStart(2, '0')}`
  return n < 0n ? `-${s}` : s
}

// ---- external ids as the console shows them (src/utils/externalIds.js) -------------------
function shownIdValue(raw) {
  const i = raw.indexOf(':')
  const kind = raw.slice(0, i)
  let rest = raw.slice(i + 1)
  if (['openid', 'external_userid', 'custom'].includes(kind) && rest.indexOf(':') > 0) rest = rest.slice(rest.indexOf(':') + 1)
  if (kind !== 'phone') return { kind, value: rest, full: rest }
  const m = /^\+86(1\d{10})$/.exec(rest)
  const full = m ? m[1] : rest
  const plus = full.startsWith('+') ? '+' : ''
  const digits = plus ? full.slice(1) : full
  const masked =
    digits.length >= 9
      ? `${plus}${digits.slice(0, 3)}${'*'.repeat(digits.length - 7)}${digits.slice(-4)}`
      : digits.length <= 2
        ? full
        : `${plus}${'*'.repeat(digits.length - 2)}${digits.slice(-2)}`
  return { kind, value: masked, full }
}

// ---- calendar dates in the tenant's zone ------------------------------------------
function todayIn(timeZone) {
  const parts = {}
  for (const p of new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(new Date())) {
    parts[p.type] = p.value
  }
  return `${parts.year}-${parts.month}-${parts.day}`
}
function addDays(ymd, days) {
  const [y, m, d] = ymd.split('-').map(Number)
  const t = new Date(Date.UTC(y, m - 1, d + days))
  return `${t.getUTCFullYear()}-${String(t.getUTCMonth() + 1).padStart(2, '0')}-${String(t.getUTCDate()).padStart(2, '0')}`
}

test('overview, channel report and person pages show the API figures', { timeout: 240_000 }, async () => {
  if (!BASE) assert.fail(`SIYU_URL is not set: this test needs a running siyu server. ${USAGE}`)
  if (!USER || !PASSWORD) assert.fail(`SIYU_USER and SIYU_PASSWORD must be set. ${USAGE}`)

  const chromium = await loadChromium()

  // 1. Expected figures, straight from the API.
  const login = await call('POST', '/v1/auth/login', { body: { username: USER, password: PASSWORD } })
  assert.ok(login?.token, 'login answered without a token')
  assert.ok(Array.isArray(login.tenants) && login.tenants.length > 0, `operator ${USER} belongs to no tenant`)
  const tenantId = login.tenants[0].id // a fresh browser uses the first tenant too
  let timeZone = DEFAULT_TIMEZONE
  try {
    const tenants = await call('GET', '/v1/tenants', { token: login.token, tenant: tenantId })
    const mine = (tenants?.items || []).find((x) => String(x.id) === String(tenantId))
    if (mine?.timezone) timeZone = mine.timezone
  } catch {
    // the console falls back to Asia/Shanghai the same way
  }
  const today = todayIn(timeZone)
  const from = addDays(today, -29) // last 30 days, today included
  const to = addDays(today, 1) // exclusive
  const expected = await call('GET', `/v1/analytics/overview?from=${from}&to=${to}`, { token: login.token, tenant: tenantId })
  for (const k of ['people', 'buyers', 'orders', 'gmv_fen']) {
    assert.ok(Number.isInteger(expected?.[k]), `overview answer has no integer ${k}: ${JSON.stringify(expected).slice(0, 300)}`)
  }
  const want = {
    'stat-people': formatInt(expected.people),
    'stat-buyers': formatInt(expected.buyers),
    'stat-orders': formatInt(expected.orders),
    'stat-gmv': formatFen(expected.gmv_fen),
  }
  // The channel report for the same default range, first touch.
  const report = await call('GET', `/v1/analytics/channels?from=${from}&to=${to}&model=first`, { token: login.token, tenant: tenantId })
  assert.ok(report?.total && Number.isInteger(report.total.gmv_fen), `channel report has no integer total.gmv_fen: ${JSON.stringify(report).slice(0, 300)}`)
  assert.ok(Array.isArray(report.rows), 'channel report has no rows array')
  const reportRowIds = report.rows.map((r) => (r.channel_id === null || r.channel_id === undefined ? 'none' : String(r.channel_id)))
  // A person with an order: the first order of the list, and that person.
  const firstOrders = await call('GET', '/v1/orders?limit=1', { token: login.token, tenant: tenantId })
  const order = firstOrders?.items?.[0]
  assert.ok(order?.order_no && order?.person_id, 'the tenant has no orders: load some (e.g. `siyu demo`) before running this test')
  const person = await call('GET', `/v1/people/${order.person_id}`, { token: login.token, tenant: tenantId })
  assert.ok(Array.isArray(person?.external_ids), `GET /v1/people/${order.person_id} has no external_ids`)
  await call('POST', '/v1/auth/logout', { token: login.token, body: {} }).catch(() => {})

  // 2. The console in a real browser.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  const problems = []
  let page
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 960 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' })
    page = await context.newPage()
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    const diag = () => (problems.length ? `\nbrowser said:\n  ${problems.slice(0, 10).join('\n  ')}` : '')

    await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' })
    const username = page.locator('input[data-testid="login-username"]')
    await username.waitFor({ state: 'visible', timeout: 30_000 }).catch((e) => {
      throw new Error(`the login form did not appear at ${BASE}/ (${e.message})${diag()}`)
    })
    assert.match(await page.locator('[data-testid="login-page"]').innerText(), /登录/, 'the login page is not in Chinese by default')
    await username.fill(USER)
    await page.locator('input[data-testid="login-password"]').fill(PASSWORD)
    await page.locator('[data-testid="login-submit"]').click()

    // The overview is the default page after login; wait for its request to finish.
    const overview = page.locator('[data-testid="overview"]')
    await overview.waitFor({ state: 'visible', timeout: 30_000 }).catch(async (e) => {
      const err = await page.locator('[data-testid="login-error"]').innerText().catch(() => '')
      throw new Error(`the overview did not open after login${err ? `: login error “${err}”` : ''} (${e.message})${diag()}`)
    })
    await page.locator('[data-testid="overview"][data-state="ready"], [data-testid="overview"][data-state="error"]').waitFor({ timeout: 30_000 })
    if ((await overview.getAttribute('data-state')) === 'error') {
      assert.fail(`the overview request failed in the browser: ${await page.locator('[data-testid="overview-error"]').innerText()}${diag()}`)
    }
    assert.equal(await overview.getAttribute('data-from'), from, 'the page asked for a different `from` date than the default last-30-days range')
    assert.equal(await overview.getAttribute('data-to'), to, 'the page asked for a different `to` date (exclusive: the day after today)')

    for (const [id, text] of Object.entries(want)) {
      const card = page.locator(`[data-testid="${id}"]`)
      const value = (await page.locator(`[data-testid="${id}-value"]`).innerText()).trim()
      assert.equal(value, text, `${id} shows ${value}, the API says ${text}`)
      assert.ok((await card.textContent()).includes(text), `${id} card text does not contain ${text}`)
    }

    // 3. Switch the language to English.
    await page.locator('[data-testid="lang-switch"]').click()
    await page.locator('[data-testid="lang-option-en"]').click()
    await page.locator('[data-testid="page-title"]', { hasText: 'Overview' }).waitFor({ timeout: 10_000 })
    await page.locator('[data-testid="lang-option-en"]').waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => {})
    assert.ok((await page.locator('[data-testid="stat-buyers"]').innerText()).includes('Buyers'), 'the buyers card is not labelled “Buyers” in English')
    assert.ok((await page.locator('[data-testid="side-menu"]').innerText()).includes('Channels'), 'the menu has no “Channels” entry in English')
    assert.equal(await page.evaluate(() => localStorage.getItem('siyu.locale')), 'en', 'the language choice is not remembered')
    for (const [id, text] of Object.entries(want)) {
      assert.equal((await page.locator(`[data-testid="${id}-value"]`).innerText()).trim(), text, `${id} changed after switching language`)
    }

    // 4. The channel report (menu → 渠道效果 / Channel performance): total GMV as the API's.
    await page.locator('[data-testid="nav-channel-report"]').click()
    const reportPage = page.locator('[data-testid="channel-report"]')
    await reportPage.waitFor({ state: 'visible', timeout: 15_000 }).catch((e) => {
      throw new Error(`the channel report did not open from the menu (${e.message})${diag()}`)
    })
    await page.locator('[data-testid="channel-report"][data-state="ready"], [data-testid="channel-report"][data-state="error"]').waitFor({ timeout: 30_000 })
    if ((await reportPage.getAttribute('data-state')) === 'error') {
      assert.fail(`the channel report request failed in the browser: ${await page.locator('[data-testid="channel-report-error"]').innerText()}${diag()}`)
    }
    assert.equal(await reportPage.getAttribute('data-from'), from, 'the channel report asked for a different `from` than the default last 30 days')
    assert.equal(await reportPage.getAttribute('data-to'), to, 'the channel report asked for a different `to` (exclusive: the day after today)')
    assert.equal(await reportPage.getAttribute('data-model'), 'first', 'the channel report does not default to first touch')
    const wantGmv = formatFen(report.total.gmv_fen)
    const totalGmv = page.locator('[data-testid="channel-report-total-gmv"]')
    await totalGmv.waitFor({ timeout: 10_000 }).catch((e) => {
      throw new Error(`the channel report shows no total GMV cell (${e.message})${diag()}`)
    })
    assert.equal((await totalGmv.innerText()).trim(), wantGmv, `the channel report's total GMV is not the API's total.gmv_fen (${report.total.gmv_fen} fen)`)
    for (const id of reportRowIds) {
      assert.equal(await page.locator(`[data-testid="channel-report-row-${id}"]`).count(), 1, `the channel report has no row channel-report-row-${id}`)
    }
    assert.equal(await page.locator('[data-testid="channel-funnel"]').count(), 1, 'the channel report has no funnel')
    assert.equal(await page.locator('[data-testid="channel-report-model"]').count(), 1, 'the channel report has no attribution switch')

    // 5. A person with orders, reached from the orders list's person column.
    await page.locator('[data-testid="nav-orders"]').click()
    const personLink = page.locator(`[data-testid="order-person-link-${order.person_id}"]`).first()
    await personLink.waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`the orders list shows no link to person ${order.person_id} (${e.message})${diag()}`)
    })
    await personLink.click()
    const personPage = page.locator(`[data-testid="person"][data-person-id="${order.person_id}"]`)
    await personPage.waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`the person page of ${order.person_id} did not open from the orders list (${e.message})${diag()}`)
    })
    await page.locator('[data-testid="person"][data-state="ready"], [data-testid="person"][data-state="not-found"], [data-testid="person"][data-state="error"]').waitFor({ timeout: 15_000 })
    assert.equal(await personPage.getAttribute('data-state'), 'ready', `the person page of ${order.person_id} did not load${diag()}`)

    // the orders tab lists the order (paging on if the person has many)
    const orderNos = page.locator('[data-testid="person-orders-table"] [data-testid="person-order-no"]')
    let found = false
    for (let pageNo = 1; pageNo <= 50 && !found; pageNo++) {
      await orderNos.first().waitFor({ timeout: 15_000 }).catch((e) => {
        throw new Error(`the person's orders tab lists no orders (page ${pageNo}) (${e.message})${diag()}`)
      })
      const texts = (await orderNos.allInnerTexts()).map((x) => x.trim())
      if (texts.includes(order.order_no)) {
        found = true
        break
      }
      const next = page.locator('[data-testid="person-orders"] [data-testid="pager-next"]')
      if (await next.isDisabled()) break
      await next.click()
      await page.waitForFunction(
        (first) => {
          const el = document.querySelector('[data-testid="person-orders-table"] [data-testid="person-order-no"]')
          return el && el.textContent.trim() !== first
        },
        texts[0],
        { timeout: 15_000 },
      )
    }
    assert.ok(found, `the person's orders tab does not list order ${order.order_no}`)

    // every external id, with its kind (phones masked)
    const idTags = page.locator('[data-testid="person-external-ids"] [data-testid="external-id"]')
    assert.equal(await idTags.count(), person.external_ids.length, `the person page shows ${await idTags.count()} external ids, the API has ${person.external_ids.length}`)
    for (const raw of person.external_ids) {
      const { kind, value, full } = shownIdValue(raw)
      const tag = page.locator(`[data-testid="person-external-ids"] [data-testid="external-id"][data-kind="${kind}"]`, {
        has: page.locator('[data-testid="external-id-value"]', { hasText: value }),
      })
      assert.equal(await tag.count(), 1, `the person page does not show the external id ${kind === 'phone' ? value : raw} (kind ${kind})`)
      if (kind === 'phone') {
        await tag.locator('[data-testid="external-id-reveal"]').click()
        const revealed = page.locator('[data-testid="person-external-ids"] [data-testid="external-id"][data-kind="phone"][data-revealed="true"] [data-testid="external-id-value"]', { hasText: full })
        await revealed.waitFor({ timeout: 5_000 }).catch(() => {
          throw new Error(`clicking the phone number ${value} does not reveal it`)
        })
      }
    }

    const pageErrors = problems.filter((p) => p.startsWith('page error'))
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page')
  } finally {
    if (SCREENSHOT && page) {
      await mkdir(dirname(SCREENSHOT), { recursive: true }).catch(() => {})
      await page.screenshot({ path: SCREENSHOT, fullPage: true }).catch((e) => console.error(`screenshot failed: ${e.message}`))
    }
    await browser.close()
  }
})
