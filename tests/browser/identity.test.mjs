// Browser test of the console's identity (OneID) pages against a running server: a merged
// person's Identity tab (ids by kind, merge history), linking an id and unmerging it from that
// tab, and the merge review page (held links, reject, find a person by id).
//
//   npm ci --prefix tests/browser
//   SIYU_URL=http://127.0.0.1:8080 SIYU_USER=admin SIYU_PASSWORD=… \
//     [SIYU_IDENTITY_SCREENSHOT=/tmp/identity.png] node --test tests/browser/
//
// The test makes its own people, merge and held link through the API (ids unique to the run), in
// the operator's last tenant it may write to — with `siyu demo` that is the second brand, so the
// overview test, which reads the first tenant's figures at the same time, is not disturbed.
// The server must run with the guard on (`--max-people-per-id`, default 3).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { BASE, call, loadChromium } from './api.mjs'

const USER = process.env.SIYU_USER || ''
const PASSWORD = process.env.SIYU_PASSWORD || ''
const SCREENSHOT = process.env.SIYU_IDENTITY_SCREENSHOT || ''
const CHROMIUM = process.env.SIYU_CHROMIUM || '/usr/bin/chromium'
const USAGE =
  'set SIYU_URL (e.g. http://127.0.0.1:8080, a running `siyu serve`), SIYU_USER and SIYU_PASSWORD; ' +
  'optional SIYU_IDENTITY_SCREENSHOT=/path/to.png'

test('identity tab of a merged person, link and unmerge, and the merge review page', { timeout: 240_000 }, async () => {
  if (!BASE) assert.fail(`SIYU_URL is not set: this test needs a running siyu server. ${USAGE}`)
  if (!USER || !PASSWORD) assert.fail(`SIYU_USER and SIYU_PASSWORD must be set. ${USAGE}`)

  const chromium = await loadChromium()

  // 1. Fixtures through the API, in the last tenant the operator may write to.
  const login = await call('POST', '/v1/auth/login', { body: { username: USER, password: PASSWORD } })
  assert.ok(login?.token, 'login answered without a token')
  const writable = (login.tenants || []).filter((x) => x.role === 'admin' || x.role === 'operator')
  assert.ok(writable.length > 0, `operator ${USER} may write to no tenant (needs the admin or operator role)`)
  const tenantId = writable[writable.length - 1].id
  const api = (method, path, body) => call(method, path, { token: login.token, tenant: tenantId, body })

  const tag = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`
  const mk = async (suffix, name) => {
    const res = await api('POST', '/v1/people', { external_id: `member_no:it-${tag}-${suffix}`, name })
    assert.ok(res?.person?.id, `POST /v1/people answered without a person: ${JSON.stringify(res).slice(0, 200)}`)
    return { id: String(res.person.id), extId: res.person.external_ids?.[0] || `member_no:it-${tag}-${suffix}` }
  }
  // A merged person: the older row survives, the other answers with it.
  const a = await mk('a', '合并测试甲')
  const b = await mk('b', '合并测试乙')
  const linked = await api('POST', '/v1/identity/links', { id_a: a.extId, id_b: b.extId, reason: '浏览器测试：同一会员' })
  assert.equal(linked?.result, 'linked', `linking two people's ids did not merge them: ${JSON.stringify(linked)}`)
  assert.equal(String(linked.person_id), a.id, 'the merged person is not the older row')
  const c = await mk('c', '合并测试丙') // linked from the console below
  // A held link: one phone through which ever more people are linked, until the guard holds one.
  // (16x numbers are not among the demo's phones.)
  const hub = `phone:166${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`
  let held = null
  for (let i = 0; i < 12 && !held; i++) {
    const p = await mk(`q${i}`, `共用手机测试${i}`)
    const res = await api('POST', '/v1/identity/links', { id_a: hub, id_b: p.extId, reason: '浏览器测试：门店共用手机' })
    if (res?.result === 'quarantined') held = res
  }
  assert.ok(held?.quarantine_id, 'linking 12 people through one phone was never held for review: is the guard off (--max-people-per-id 0)?')
  const queue = await api('GET', '/v1/identity/quarantine')
  const heldItem = (queue?.items || []).find((q) => String(q.quarantine_id) === String(held.quarantine_id))
  assert.ok(heldItem, `quarantined link ${held.quarantine_id} is not in GET /v1/identity/quarantine`)
  const identity = await api('GET', `/v1/people/${a.id}/identity`)
  const firstMerge = (identity?.history || []).find((e) => e.kind === 'merge')
  assert.ok(firstMerge, `GET /v1/people/${a.id}/identity has no merge in its history`)

  // 2. The console in a real browser, in that tenant.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  const problems = []
  let page
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 960 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' })
    // the console keeps the chosen tenant here (src/store/session.js)
    await context.addInitScript((tid) => {
      if (!localStorage.getItem('siyu.token')) localStorage.setItem('siyu.tenant', tid)
    }, String(tenantId))
    page = await context.newPage()
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    const diag = () => (problems.length ? `\nbrowser said:\n  ${problems.slice(0, 10).join('\n  ')}` : '')
    const reasonBox = page.locator('.identity-reason-box')
    async function answerPrompt(reason) {
      await reasonBox.waitFor({ state: 'visible', timeout: 10_000 })
      await reasonBox.locator('input').fill(reason)
      await reasonBox.locator('.identity-reason-confirm').click()
      await reasonBox.waitFor({ state: 'hidden', timeout: 10_000 })
    }

    await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' })
    const username = page.locator('input[data-testid="login-username"]')
    await username.waitFor({ state: 'visible', timeout: 30_000 }).catch((e) => {
      throw new Error(`the login form did not appear at ${BASE}/ (${e.message})${diag()}`)
    })
    await username.fill(USER)
    await page.locator('input[data-testid="login-password"]').fill(PASSWORD)
    await page.locator('[data-testid="login-submit"]').click()
    await page.locator('[data-testid="overview"]').waitFor({ state: 'visible', timeout: 30_000 }).catch((e) => {
      throw new Error(`the overview did not open after login (${e.message})${diag()}`)
    })

    // 3. The merged row's page moves to its person and says so.
    await page.goto(`${BASE}/#/people/${b.id}?tab=identity`)
    const personPage = page.locator(`[data-testid="person"][data-person-id="${a.id}"][data-state="ready"]`)
    await personPage.waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`person ${b.id} (merged into ${a.id}) did not lead to person ${a.id}'s page (${e.message})${diag()}`)
    })
    const notice = page.locator('[data-testid="person-merged-notice"]')
    await notice.waitFor({ timeout: 5_000 }).catch(() => {
      throw new Error(`no notice that person ${b.id} was merged into ${a.id}`)
    })
    assert.equal(await notice.getAttribute('data-from'), b.id, 'the merge notice names another person')
    assert.match(await page.locator('[data-testid="person-merged-from"]').innerText(), new RegExp(`#${b.id}\\b`), `the header does not list #${b.id} under “合并自”`)

    // 4. The Identity tab: ids by kind with the row each came from, and the merge.
    const identityPane = page.locator('[data-testid="person-identity"]')
    await page.locator('[data-testid="person-identity"][data-state="ready"], [data-testid="person-identity"][data-state="error"]').waitFor({ timeout: 15_000 })
    assert.equal(await identityPane.getAttribute('data-state'), 'ready', `the Identity tab did not load${diag()}`)
    assert.ok((await page.locator('[data-testid="person-tab-identity"]').innerText()).includes('身份'), 'the tab is not labelled 身份')
    for (const x of identity.ids) {
      const item = page.locator(`[data-testid="identity-id-group"][data-kind="${x.kind}"] [data-testid="identity-id"][data-id="${x.id}"]`)
      assert.equal(await item.count(), 1, `the Identity tab does not show ${x.id} under the kind ${x.kind}`)
      assert.equal(await item.getAttribute('data-row'), String(x.person_row), `${x.id} is shown from another person row`)
      assert.ok((await item.innerText()).includes(`#${x.person_row}`), `${x.id} does not say it came from #${x.person_row}`)
    }
    const mergeEntry = page.locator(`[data-testid="identity-entry"][data-kind="merge"][data-seq="${firstMerge.seq}"]`)
    assert.equal(await mergeEntry.count(), 1, `the merge history does not show merge #${firstMerge.seq}`)
    assert.equal(await mergeEntry.getAttribute('data-status'), 'active', 'the merge is not shown as active')
    const entryText = await mergeEntry.innerText()
    assert.ok(entryText.includes('合并'), 'the merge entry is not labelled 合并')
    assert.ok(entryText.includes('浏览器测试：同一会员'), "the merge entry does not show the merge's reason")
    assert.equal(await mergeEntry.locator('[data-testid="identity-entry-ids"] [data-testid="external-id"]').count(), 2, 'the merge entry does not show its two ids')
    assert.equal(await mergeEntry.locator('[data-testid="identity-unmerge"]').count(), 1, 'an active merge has no 拆分 button')

    // 5. Link a third person's id from the console: they are merged.
    await page.locator('[data-testid="identity-link-open"]').click()
    await page.locator('input[data-testid="identity-link-id"]').fill(c.extId)
    await page.locator('input[data-testid="identity-link-reason"]').fill('浏览器测试：控制台关联')
    await page.locator('[data-testid="identity-link-submit"]').click()
    const linkResult = page.locator('[data-testid="identity-link-result"]')
    await linkResult.waitFor({ timeout: 15_000 }).catch(async (e) => {
      const err = await page.locator('[data-testid="identity-link-error"]').innerText().catch(() => '')
      throw new Error(`linking ${c.extId} showed no result${err ? `: “${err}”` : ''} (${e.message})${diag()}`)
    })
    assert.equal(await linkResult.getAttribute('data-result'), 'linked', `linking ${c.extId} did not merge`)
    await page.locator('[data-testid="identity-link-done"]').click()
    const resolvedC = await api('GET', `/v1/identity/resolve?id=${encodeURIComponent(c.extId)}`)
    assert.equal(String(resolvedC.person_id), a.id, `after the console's link, ${c.extId} does not belong to person ${a.id}`)
    const activeMerges = page.locator('[data-testid="identity-entry"][data-kind="merge"][data-status="active"]')
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="identity-entry"][data-kind="merge"][data-status="active"]').length === 2, null, { timeout: 15_000 }).catch(async () => {
      throw new Error(`after the link the history shows ${await activeMerges.count()} active merges, not 2${diag()}`)
    })

    // 6. Unmerge it again from the history: person c is on its own again.
    const newest = activeMerges.first() // newest first
    const newestSeq = await newest.getAttribute('data-seq')
    await newest.locator('[data-testid="identity-unmerge"]').click()
    await answerPrompt('浏览器测试：不是同一人')
    await page.locator('[data-testid="identity-unmerge-result"]').waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`unmerging #${newestSeq} showed no result (${e.message})${diag()}`)
    })
    await page.locator(`[data-testid="identity-entry"][data-kind="merge"][data-seq="${newestSeq}"][data-status="undone"]`).waitFor({ timeout: 15_000 })
    assert.equal(await page.locator('[data-testid="identity-entry"][data-kind="unmerge"]').count(), 1, 'the history shows no 拆分 entry')
    const afterUnmerge = await api('GET', `/v1/identity/resolve?id=${encodeURIComponent(c.extId)}`)
    assert.equal(String(afterUnmerge.person_id), c.id, `after the unmerge, ${c.extId} does not belong to person ${c.id} again`)
    assert.equal(
      await page.locator(`[data-testid="identity-id"][data-id="${c.extId}"]`).count(),
      0,
      `after the unmerge the page still lists ${c.extId}`,
    )
    if (SCREENSHOT) {
      await mkdir(dirname(SCREENSHOT), { recursive: true }).catch(() => {})
      await page.screenshot({ path: SCREENSHOT.replace(/(\.png)?$/, '-person.png'), fullPage: true }).catch(() => {})
    }

    // 7. The merge review page, from the menu: the held link, then reject it.
    await page.locator('[data-testid="nav-identity-quarantine"]').click()
    const review = page.locator('[data-testid="identity-quarantine"]')
    await review.waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`the merge review page did not open from the menu (${e.message})${diag()}`)
    })
    await page.locator('[data-testid="identity-quarantine"][data-state="ready"], [data-testid="identity-quarantine"][data-state="error"]').waitFor({ timeout: 15_000 })
    assert.equal(await review.getAttribute('data-state'), 'ready', `the held links did not load${diag()}`)
    assert.equal((await page.locator('[data-testid="page-title"]').innerText()).trim(), '合并审核', 'the page is not titled 合并审核')
    const row = page.locator('.el-table__row', { has: page.locator(`[data-testid="quarantine-row"][data-qid="${held.quarantine_id}"]`) })
    await row.first().waitFor({ timeout: 10_000 }).catch(() => {
      throw new Error(`the merge review page does not list held link #${held.quarantine_id}${diag()}`)
    })
    for (const pid of heldItem.people) {
      assert.equal(await row.first().locator(`[data-testid="quarantine-person-link"][data-person="${pid}"]`).count(), 1, `held link #${held.quarantine_id} does not link to person #${pid}`)
    }
    assert.equal((await row.first().locator('[data-testid="quarantine-guard-reason"]').innerText()).trim(), heldItem.guard_reason, 'the guard reason is not the API’s')
    assert.equal(await row.first().locator('[data-testid="quarantine-ids"] [data-testid="external-id"]').count(), 2, 'the held link does not show its two ids')
    await row.first().locator('[data-testid="quarantine-reject"]').click()
    await answerPrompt('浏览器测试：门店共用手机，不是同一人')
    await page.waitForFunction(
      (qid) => !document.querySelector(`[data-testid="quarantine-row"][data-qid="${qid}"]`),
      String(held.quarantine_id),
      { timeout: 15_000 },
    ).catch(() => {
      throw new Error(`held link #${held.quarantine_id} is still listed after 驳回${diag()}`)
    })
    const queueAfter = await api('GET', '/v1/identity/quarantine')
    assert.ok(!(queueAfter.items || []).some((q) => String(q.quarantine_id) === String(held.quarantine_id)), 'the rejected link is still pending in the API')

    // 8. Find a person by any id: the merged row's id leads to the person.
    await page.locator('input[data-testid="identity-resolve"]').fill(b.extId)
    await page.locator('[data-testid="identity-resolve-submit"]').click()
    await page.locator(`[data-testid="person"][data-person-id="${a.id}"]`).waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`finding ${b.extId} did not open person ${a.id} (${e.message})${diag()}`)
    })

    // 9. English.
    await page.locator('[data-testid="lang-switch"]').click()
    await page.locator('[data-testid="lang-option-en"]').click()
    await page.locator('[data-testid="person-tab-identity"]', { hasText: 'Identity' }).waitFor({ timeout: 10_000 })
    assert.ok((await page.locator('[data-testid="side-menu"]').innerText()).includes('Merge review'), 'the menu has no “Merge review” entry in English')

    const pageErrors = problems.filter((p) => p.startsWith('page error'))
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page')
  } finally {
    if (SCREENSHOT && page) {
      await mkdir(dirname(SCREENSHOT), { recursive: true }).catch(() => {})
      await page.screenshot({ path: SCREENSHOT, fullPage: true }).catch((e) => console.error(`screenshot failed: ${e.message}`))
    }
    await browser.close()
    await call('POST', '/v1/auth/logout', { token: login.token, body: {} }).catch(() => {})
  }
})
