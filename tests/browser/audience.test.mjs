// Browser test of the console's audience pages (人群运营) against a running server: the tags by
// group, importing tags from a CSV file, the segment builder's live count (the same figure
// POST /v1/audience/count answers for the same expression), saving a segment, freezing a segment's members (a snapshot), the RFM matrix and
// its threshold settings, the lifecycle chart, its rules and the audience check (verify), the KOC
// ranking and a person's audience profile.
//
//   npm ci --prefix tests/browser
//   SIYU_URL=http://127.0.0.1:8080 SIYU_USER=admin SIYU_PASSWORD=… \
//     [SIYU_AUDIENCE_SCREENSHOT=/tmp/audience.png] node --test tests/browser/
//
// It reads the first tenant (with `siyu demo`: the demo brand, whose tags include the groups 会员
// and 行为, the rule tag 高价值 and the manual tag 门店VIP, and whose segments include 沉睡会员 and
// 近30天活跃). It writes there one segment with a name unique to the run, deleted again at the end,
// and one snapshot of 沉睡会员 with a name unique to the run (snapshots cannot be deleted); neither
// changes a figure the overview test reads. It imports a CSV file that puts three of the tenant's
// people (the first ones GET /v1/people lists) in a new manual tag with a name unique to the run,
// deleted again at the end. It reads the audience settings but does not change them (it sends one
// invalid change, which the server refuses).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { BASE, call, loadChromium } from './api.mjs'

const USER = process.env.SIYU_USER || ''
const PASSWORD = process.env.SIYU_PASSWORD || ''
const SCREENSHOT = process.env.SIYU_AUDIENCE_SCREENSHOT || ''
const CHROMIUM = process.env.SIYU_CHROMIUM || '/usr/bin/chromium'
const USAGE =
  'set SIYU_URL (e.g. http://127.0.0.1:8080, a running `siyu serve`), SIYU_USER and SIYU_PASSWORD; ' +
  'optional SIYU_AUDIENCE_SCREENSHOT=/path/to.png'

// What the demo brand is expected to have (see the file's header).
const DEMO_GROUPS = ['会员', '行为']
const DEMO_RULE_TAG = '高价值'
const DEMO_MANUAL_TAG = '门店VIP'
const DEMO_SEGMENTS = ['沉睡会员', '近30天活跃']
const RFM_CLASSES = [
  'important_value',
  'important_develop',
  'important_keep',
  'important_retain',
  'general_value',
  'general_develop',
  'general_keep',
  'general_retain',
]
const STAGES = ['prospect', 'new', 'repeat', 'active', 'dormant', 'churned', 'recalled']

// tag("name") or tag("group/name"): the console's builder always writes the group when there is one
const tagRef = (t) => (t.group ? `${t.group}/${t.name}` : t.name)
const runId = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
// one CSV cell, quoted when it has to be
const csvCell = (v) => (/[",\r\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v))

test('audience pages: tags, the segment builder and its live count, RFM, lifecycle, KOC, a person’s profile', { timeout: 300_000 }, async () => {
  if (!BASE) assert.fail(`SIYU_URL is not set: this test needs a running siyu server. ${USAGE}`)
  if (!USER || !PASSWORD) assert.fail(`SIYU_USER and SIYU_PASSWORD must be set. ${USAGE}`)

  const chromium = await loadChromium()

  // 1. What the API says.
  const login = await call('POST', '/v1/auth/login', { body: { username: USER, password: PASSWORD } })
  assert.ok(login?.token, 'login answered without a token')
  assert.ok(Array.isArray(login.tenants) && login.tenants.length > 0, `operator ${USER} belongs to no tenant`)
  const tenant = login.tenants[0] // a fresh browser uses the first tenant too
  assert.ok(['admin', 'operator'].includes(tenant.role), `operator ${USER} may not write to tenant ${tenant.id} (role ${tenant.role}); the test saves a segment there`)
  const api = (method, path, body) => call(method, path, { token: login.token, tenant: tenant.id, body })

  const tags = (await api('GET', '/v1/tags'))?.items
  assert.ok(Array.isArray(tags), 'GET /v1/tags has no items array')
  for (const g of DEMO_GROUPS) assert.ok(tags.some((t) => t.group === g), `the tenant has no tag in the group ${g}: load the demo (\`siyu demo\`) first`)
  const ruleTag = tags.find((t) => t.name === DEMO_RULE_TAG)
  const manualTag = tags.find((t) => t.name === DEMO_MANUAL_TAG)
  assert.ok(ruleTag, `the tenant has no tag ${DEMO_RULE_TAG}: load the demo first`)
  assert.equal(ruleTag.kind, 'rule', `${DEMO_RULE_TAG} is not a rule tag`)
  assert.ok(manualTag, `the tenant has no tag ${DEMO_MANUAL_TAG}: load the demo first`)
  assert.equal(manualTag.kind, 'manual', `${DEMO_MANUAL_TAG} is not a manual tag`)
  const segments = (await api('GET', '/v1/segments'))?.items
  assert.ok(Array.isArray(segments), 'GET /v1/segments has no items array')
  for (const name of DEMO_SEGMENTS) assert.ok(segments.some((s) => s.name === name), `the tenant has no segment ${name}: load the demo first`)

  // The segment the test builds: 高价值 AND orders(last 365d) >= 2.
  const wantJson = { and: [{ tag: tagRef(ruleTag) }, { orders: { window_days: 365 }, op: '>=', value: 2 }] }
  const segmentName = `浏览器测试人群-${runId()}`
  const snapshotName = `浏览器测试名单-${runId()}`
  const isAdmin = tenant.role === 'admin'
  // The tag import: a new tag, two people by external id (in a column named 客户ID, mapped to
  // external_id in the dialog), one by person id, and an external id nobody has.
  const importTag = `导入测试-${runId()}`
  const listedPeople = (await api('GET', '/v1/people?limit=50'))?.items
  assert.ok(Array.isArray(listedPeople), 'GET /v1/people has no items array')
  const byExternalId = listedPeople.filter((p) => Array.isArray(p.external_ids) && p.external_ids.length > 0).slice(0, 2)
  assert.equal(byExternalId.length, 2, 'the first 50 people of GET /v1/people include fewer than 2 with an external id: load the demo first')
  const byPersonId = listedPeople.find((p) => !byExternalId.some((q) => q.id === p.id))
  assert.ok(byPersonId, 'GET /v1/people lists fewer than 3 people: load the demo first')
  const importPeople = [...byExternalId.map((p) => p.id), byPersonId.id]
  const unknownId = `unionid:nobody-${runId()}`
  const importCsv = [
    ['tag', '客户ID', 'person_id'],
    [importTag, byExternalId[0].external_ids[0], ''],
    [importTag, byExternalId[1].external_ids[0], ''],
    [importTag, '', byPersonId.id],
    [importTag, unknownId, ''],
  ].map((r) => r.map(csvCell).join(',')).join('\r\n') + '\r\n'
  const importBadLine = 5 // the header is line 1
  let importTagId = null
  const settingsBefore = await api('GET', '/v1/audience/settings')
  assert.ok(settingsBefore?.rfm && settingsBefore?.lifecycle, 'GET /v1/audience/settings has no rfm or lifecycle')
  let savedId = null

  // 2. The console in a real browser.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  const problems = []
  let page
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 960 }, locale: 'zh-CN', timezoneId: 'Asia/Shanghai' })
    await context.addInitScript((tid) => {
      if (!localStorage.getItem('siyu.token')) localStorage.setItem('siyu.tenant', tid)
    }, String(tenant.id))
    page = await context.newPage()
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`))
    const diag = () => (problems.length ? `\nbrowser said:\n  ${problems.slice(0, 10).join('\n  ')}` : '')

    // Opens an audience page from the menu and waits until it has loaded (or failed: then fails
    // with the page's error message).
    async function openPage(nav, testid, errorTestid) {
      await page.locator(`[data-testid="${nav}"]`).click()
      const root = page.locator(`[data-testid="${testid}"]`)
      await root.waitFor({ timeout: 15_000 }).catch((e) => {
        throw new Error(`${testid} did not open from the menu entry ${nav} (${e.message})${diag()}`)
      })
      await page.locator(`[data-testid="${testid}"][data-state="ready"], [data-testid="${testid}"][data-state="error"]`).waitFor({ timeout: 30_000 })
      if ((await root.getAttribute('data-state')) === 'error') {
        const msg = await page.locator(`[data-testid="${errorTestid}"]`).innerText().catch(() => '')
        assert.fail(`${testid} failed to load: ${msg}${diag()}`)
      }
      return root
    }
    // Picks the option `value` of an Element Plus select (options are rendered in a popper).
    async function choose(select, optionTestid, value) {
      await select.click()
      const option = page.locator(`li[data-testid="${optionTestid}"][data-value="${value}"]:visible`)
      await option.first().waitFor({ timeout: 10_000 }).catch((e) => {
        throw new Error(`the option ${value} (${optionTestid}) did not appear (${e.message})${diag()}`)
      })
      await option.first().click()
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
    const menu = await page.locator('[data-testid="side-menu"]').innerText()
    for (const label of ['人群运营', '标签管理', '人群', 'RFM 矩阵', '生命周期', 'KOC']) {
      assert.ok(menu.includes(label), `the menu has no “${label}” entry`)
    }

    // 3. Tags: every tag of the API, by group, with its kind and rule.
    await openPage('nav-audience-tags', 'audience-tags', 'tags-error')
    assert.equal((await page.locator('[data-testid="page-title"]').innerText()).trim(), '标签管理', 'the tags page is not titled 标签管理')
    for (const g of DEMO_GROUPS) {
      assert.equal(await page.locator(`[data-testid="tag-group"][data-group="${g}"]`).count(), 1, `the tags page has no group ${g}`)
    }
    for (const t of tags) {
      const row = page.locator(`[data-testid="tag-group"][data-group="${t.group || ''}"] [data-testid="tag-row"][data-id="${t.id}"]`)
      assert.equal(await row.count(), 1, `the tags page does not show ${tagRef(t)} under its group`)
      assert.equal(await row.getAttribute('data-kind'), t.kind, `${tagRef(t)} is not shown as a ${t.kind} tag`)
    }
    const ruleRow = page.locator('.el-table__row', { has: page.locator(`[data-testid="tag-row"][data-id="${ruleTag.id}"]`) }).first()
    assert.equal((await ruleRow.locator('[data-testid="tag-rule"]').innerText()).trim(), ruleTag.rule, `the rule of ${DEMO_RULE_TAG} is not the API's`)
    assert.ok((await ruleRow.locator('[data-testid="tag-kind"]').innerText()).includes('规则'), `${DEMO_RULE_TAG} is not labelled 规则`)
    const manualRow = page.locator('.el-table__row', { has: page.locator(`[data-testid="tag-row"][data-id="${manualTag.id}"]`) }).first()
    assert.ok((await manualRow.locator('[data-testid="tag-kind"]').innerText()).includes('手动'), `${DEMO_MANUAL_TAG} is not labelled 手动`)
    assert.equal(await manualRow.locator('[data-testid="tag-people-open"]').isEnabled(), true, `${DEMO_MANUAL_TAG} (manual) cannot be tagged by hand`)
    assert.equal(await ruleRow.locator('[data-testid="tag-people-open"]').isEnabled(), false, `${DEMO_RULE_TAG} (a rule tag) offers tagging by hand`)

    // 3b. Import tags (CSV): the file (with a UTF-8 BOM, as spreadsheets save it) is sent as it is,
    // with the mapping of 客户ID to external_id; the counts and the failed row are shown, and the new
    // tag is listed with its members, as many as GET /v1/tags and POST /v1/audience/count say.
    const importOpen = page.locator('[data-testid="tag-import-open"]')
    assert.equal(await importOpen.isEnabled(), true, `the import is not offered to a ${tenant.role}`)
    await importOpen.click()
    const importDialog = page.locator('[data-testid="tag-import"]')
    await importDialog.waitFor({ state: 'visible', timeout: 10_000 }).catch((e) => {
      throw new Error(`the import dialog did not open (${e.message})${diag()}`)
    })
    const example = await page.locator('[data-testid="tag-import-example"]').innerText()
    assert.ok(example.startsWith('tag,external_id'), `the import dialog's example does not start with the header tag,external_id: ${example}`)
    assert.equal(await page.locator('[data-testid="tag-import-submit"]').isDisabled(), true, 'the import can be submitted without a file')
    await page.locator('input[data-testid="tag-import-file"]').setInputFiles({
      name: `${importTag}.csv`,
      mimeType: 'text/csv',
      buffer: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(importCsv, 'utf8')]),
    })
    await page.locator('[data-testid="tag-import-file-name"][data-ready="true"]').waitFor({ timeout: 10_000 }).catch(async (e) => {
      const err = await page.locator('[data-testid="tag-import-file-error"]').innerText().catch(() => '')
      throw new Error(`the import dialog did not read the file${err ? `: “${err}”` : ''} (${e.message})${diag()}`)
    })
    assert.ok((await page.locator('[data-testid="tag-import-columns"]').innerText()).includes('tag, 客户ID, person_id'), 'the import dialog does not show the file’s columns')
    await page.locator('[data-testid="tag-import-map-on"]').click()
    await choose(page.locator('[data-testid="tag-import-map-column"]'), 'tag-import-map-column-option', '客户ID')
    assert.equal(await page.locator('[data-testid="tag-import-map-preview"]').getAttribute('data-value'), 'external_id=客户ID', 'the mapping of 客户ID (full ids) is not external_id=客户ID')
    const [importRequest] = await Promise.all([
      page.waitForRequest((r) => r.url().includes('/v1/imports/tags') && r.method() === 'POST', { timeout: 15_000 }),
      page.locator('[data-testid="tag-import-submit"]').click(),
    ])
    assert.deepEqual(new URL(importRequest.url()).searchParams.getAll('map'), ['external_id=客户ID'], 'the import was not sent with map=external_id=客户ID')
    assert.ok((importRequest.headers()['content-type'] || '').startsWith('text/csv'), `the import was sent as ${importRequest.headers()['content-type']}, not text/csv`)
    assert.ok((importRequest.postData() || '').includes(unknownId), 'the import did not send the file’s rows')
    const importResult = page.locator('[data-testid="tag-import-result"]')
    await importResult.waitFor({ timeout: 30_000 }).catch((e) => {
      throw new Error(`the import showed no result (${e.message})${diag()}`)
    })
    const importShown = {}
    for (const k of ['rows', 'created', 'unchanged', 'failed']) importShown[k] = await importResult.getAttribute(`data-${k}`)
    assert.deepEqual(importShown, { rows: '4', created: '3', unchanged: '0', failed: '1' }, 'the import’s counts are not 4 rows read, 3 added, 0 already tagged, 1 failed')
    const statsText = await importResult.innerText()
    for (const [label, n] of [['读取', 4], ['新增', 3], ['已有', 0], ['失败', 1]]) {
      const stat = importResult.locator('[data-testid="tag-import-stat"]', { hasText: label })
      assert.equal(await stat.count(), 1, `the import’s result has no “${label}” count: ${statsText}`)
      assert.equal(await stat.getAttribute('data-value'), String(n), `the import’s result shows ${label} ${await stat.getAttribute('data-value')}, not ${n}`)
      assert.ok((await stat.innerText()).includes(String(n)), `the import’s result does not show ${label} ${n}`)
    }
    const errorRows = page.locator('[data-testid="tag-import-errors"] [data-testid="tag-import-error"]')
    assert.equal(await errorRows.count(), 1, 'the import does not list exactly one failed row')
    assert.equal(await errorRows.first().getAttribute('data-line'), String(importBadLine), `the failed row is not shown at line ${importBadLine}`)
    assert.equal(await errorRows.first().getAttribute('data-code'), 'UNKNOWN_PERSON', 'the failed row’s code is not UNKNOWN_PERSON')
    const errorsText = await page.locator('[data-testid="tag-import-errors"]').innerText()
    for (const want of ['行号', '代码', '字段', '说明', String(importBadLine), 'UNKNOWN_PERSON', 'external_id']) {
      assert.ok(errorsText.includes(want), `the failed rows’ table does not show “${want}”: ${errorsText}`)
    }
    await page.locator('[data-testid="tag-import-close"]').click()
    await importDialog.waitFor({ state: 'hidden', timeout: 10_000 })
    const importedRow = page.locator(`[data-testid="tag-group"][data-group=""] [data-testid="tag-row"][data-name="${importTag}"]`)
    await importedRow.waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`the imported tag ${importTag} is not listed without a group after the import (${e.message})${diag()}`)
    })
    assert.equal(await importedRow.getAttribute('data-kind'), 'manual', `the imported tag ${importTag} is not a manual tag`)
    const importedApi = (await api('GET', '/v1/tags')).items.find((x) => x.name === importTag)
    assert.ok(importedApi, `GET /v1/tags does not list ${importTag} after the import`)
    importTagId = importedApi.id
    assert.equal(String(importedApi.id), await importedRow.getAttribute('data-id'), 'the imported tag is listed with another id than the API’s')
    const importedTableRow = page.locator('.el-table__row', { has: page.locator(`[data-testid="tag-row"][data-id="${importTagId}"]`) }).first()
    const importedShown = await importedTableRow.locator('[data-testid="tag-people"]').getAttribute('data-value')
    assert.equal(importedShown, '3', `the imported tag is listed with ${importedShown} people, not the 3 imported`)
    assert.equal(importedApi.people, 3, `GET /v1/tags says ${importTag} has ${importedApi.people} people, not the 3 imported`)
    const importedCount = await api('POST', '/v1/audience/count', { expression: `tag(${JSON.stringify(importTag)})` })
    assert.equal(String(importedCount.people), importedShown, `POST /v1/audience/count says tag("${importTag}") has ${importedCount.people} people, the list ${importedShown}`)
    for (const id of importPeople) {
      const profile = await api('GET', `/v1/people/${id}/audience`)
      assert.ok((profile?.tags || []).map(String).includes(String(importTagId)), `person ${id} of the file is not in ${importTag} (their tags: ${JSON.stringify(profile?.tags)})`)
    }

    // 4. Segments: the demo's saved segments.
    await openPage('nav-audience-segments', 'audience-segments', 'segments-error')
    for (const name of DEMO_SEGMENTS) {
      await page.locator(`[data-testid="segment-row"][data-name="${name}"]`).waitFor({ timeout: 10_000 }).catch(() => {
        throw new Error(`the segments page does not list ${name}${diag()}`)
      })
    }

    // 5. Build 高价值 AND orders(last 365d) >= 2 in the visual builder.
    const builder = page.locator('[data-testid="segment-builder"]')
    assert.equal(await builder.getAttribute('data-mode'), 'visual', 'the builder does not start in visual mode')
    await builder.locator('[data-testid="builder-add-condition"]').first().click()
    const first = builder.locator('[data-testid="builder-condition"]').nth(0)
    assert.equal(await first.getAttribute('data-kind'), 'tag', 'a new condition is not a tag condition')
    await choose(first.locator('[data-testid="builder-tag-select"]'), 'builder-tag-option', tagRef(ruleTag))
    await builder.locator('[data-testid="builder-add-condition"]').first().click()
    const second = builder.locator('[data-testid="builder-condition"]').nth(1)
    await choose(second.locator('[data-testid="builder-kind"]'), 'builder-kind-option', 'orders')
    await page.locator('[data-testid="builder-condition"][data-kind="orders"]').waitFor({ timeout: 5_000 })
    await choose(second.locator('[data-testid="builder-window"]'), 'builder-window-option', '365')

    // 6. The live count: what POST /v1/audience/count answers for the same expression.
    const count = builder.locator('[data-testid="builder-count"]')
    async function settledCount() {
      await page.locator('[data-testid="builder-count"][data-state="ready"], [data-testid="builder-count"][data-state="error"]').waitFor({ timeout: 15_000 }).catch(async (e) => {
        throw new Error(`the live count did not settle (state ${await count.getAttribute('data-state')}) (${e.message})${diag()}`)
      })
      if ((await count.getAttribute('data-state')) === 'error') {
        const msg = await builder.locator('[data-testid="builder-count-error"]').innerText().catch(() => '')
        assert.fail(`the live count failed: ${msg}${diag()}`)
      }
      return {
        people: await count.getAttribute('data-people'),
        expression: await count.getAttribute('data-expression'),
        request: JSON.parse((await count.getAttribute('data-request')) || 'null'),
      }
    }
    let shown = await settledCount()
    assert.deepEqual(shown.request, { json: wantJson }, 'the builder did not send the JSON form of 高价值 AND orders(last 365d) >= 2')
    let answer = null
    let matched = false
    // Counts move as events and orders arrive: compare with counts taken around the page's.
    for (let i = 0; i < 5 && !matched; i++) {
      const before = await api('POST', '/v1/audience/count', { json: wantJson })
      if (i > 0) {
        await builder.locator('[data-testid="builder-recount"]').click()
        shown = await settledCount()
      }
      const after = await api('POST', '/v1/audience/count', { json: wantJson })
      answer = after
      matched = [String(before.people), String(after.people)].includes(shown.people)
      if (!matched) await sleep(1000)
    }
    assert.ok(matched, `the live count shows ${shown.people} people, POST /v1/audience/count answers ${answer?.people}`)
    assert.equal(shown.expression, answer.expression, 'the builder does not show the canonical expression the API answers')
    assert.equal((await builder.locator('[data-testid="builder-canonical"]').innerText()).trim(), answer.expression, 'the canonical expression shown is not the API’s')
    assert.ok(answer.expression.includes(tagRef(ruleTag)) && answer.expression.includes('last 365d'), `the canonical expression ${answer.expression} is not the one built`)

    // 7. Save it; it shows up in the list with the canonical expression.
    await builder.locator('input[data-testid="segment-name"]').fill(segmentName)
    await builder.locator('[data-testid="segment-save"]').click()
    const savedRow = page.locator(`[data-testid="segment-row"][data-name="${segmentName}"]`)
    await savedRow.waitFor({ timeout: 15_000 }).catch(async (e) => {
      const err = await builder.locator('[data-testid="segment-save-error"]').innerText().catch(() => '')
      throw new Error(`the saved segment ${segmentName} is not listed${err ? `: “${err}”` : ''} (${e.message})${diag()}`)
    })
    savedId = await savedRow.getAttribute('data-id')
    const saved = (await api('GET', '/v1/segments')).items.find((s) => s.name === segmentName)
    assert.ok(saved, `${segmentName} is not in GET /v1/segments after saving it`)
    assert.equal(String(saved.id), savedId, 'the listed segment has another id than the API’s')
    assert.equal(saved.expression, answer.expression, 'the segment was not saved with the canonical expression')
    const tableRow = page.locator('.el-table__row', { has: savedRow }).first()
    assert.equal((await tableRow.locator('[data-testid="segment-expression"]').innerText()).trim(), saved.expression, 'the list shows another expression')
    assert.equal(await tableRow.locator('[data-testid="segment-csv"]').getAttribute('data-href'), `/v1/segments/${saved.id}/members.csv`, 'the CSV export points elsewhere')
    // its live member count, as GET /v1/segments/{id} answers it (the list refreshes every 5 s)
    let listed = null
    let live = null
    for (let i = 0; i < 4; i++) {
      live = await api('GET', `/v1/segments/${saved.id}`)
      listed = await tableRow.locator('[data-testid="segment-people"]').getAttribute('data-value')
      if (listed === String(live.people)) break
      await sleep(2000)
    }
    assert.equal(listed, String(live.people), `the list shows ${listed} people in ${segmentName}, GET /v1/segments/${saved.id} says ${live.people}`)
    if (SCREENSHOT) {
      await mkdir(dirname(SCREENSHOT), { recursive: true }).catch(() => {})
      await page.screenshot({ path: SCREENSHOT.replace(/(\.png)?$/, '-segments.png'), fullPage: true }).catch(() => {})
    }

    // 7b. Freeze the members of a demo segment (沉睡会员) under a name; the snapshot is listed by
    // GET /v1/segments/{id}/snapshots with the people the console shows, and its CSV has them.
    const demoSegment = segments.find((s) => s.name === DEMO_SEGMENTS[0])
    const demoRow = page.locator('.el-table__row', { has: page.locator(`[data-testid="segment-row"][data-id="${demoSegment.id}"]`) }).first()
    await demoRow.locator('[data-testid="segment-snapshot"]').click()
    const snapName = page.locator('input[data-testid="snapshot-name"]')
    await snapName.waitFor({ state: 'visible', timeout: 10_000 }).catch((e) => {
      throw new Error(`the snapshot dialog did not open for ${DEMO_SEGMENTS[0]} (${e.message})${diag()}`)
    })
    assert.ok((await snapName.inputValue()).startsWith(DEMO_SEGMENTS[0]), `the snapshot's default name “${await snapName.inputValue()}” does not start with the segment's name`)
    await snapName.fill(snapshotName)
    await page.locator('[data-testid="snapshot-submit"]').click()
    const snapList = page.locator(`[data-testid="segment-snapshots-list"][data-segment="${demoSegment.id}"]`)
    const snapRow = snapList.locator(`[data-testid="segment-snapshot-row"][data-name="${snapshotName}"]`)
    await snapRow.waitFor({ timeout: 15_000 }).catch(async (e) => {
      const err = await page.locator('[data-testid="snapshot-error"], [data-testid="snapshot-dialog"] .el-form-item__error').allInnerTexts().catch(() => [])
      throw new Error(`the snapshot ${snapshotName} is not listed after freezing it${err.length ? `: “${err.join(' ')}”` : ''} (${e.message})${diag()}`)
    })
    const snapShown = { id: await snapRow.getAttribute('data-id'), people: await snapRow.getAttribute('data-people') }
    const snaps = (await api('GET', `/v1/segments/${demoSegment.id}/snapshots`))?.items
    assert.ok(Array.isArray(snaps), `GET /v1/segments/${demoSegment.id}/snapshots has no items array`)
    const snap = snaps.find((x) => x.name === snapshotName)
    assert.ok(snap, `GET /v1/segments/${demoSegment.id}/snapshots does not list ${snapshotName}`)
    assert.equal(String(snap.id), snapShown.id, 'the console lists the snapshot with another id than the API’s')
    assert.equal(snapShown.people, String(snap.people), `the console shows ${snapShown.people} people in the snapshot, the API ${snap.people}`)
    assert.equal(String(snaps[0].id), String(snap.id), 'the new snapshot is not the newest the API lists')
    const snapTableRow = snapList.locator('.el-table__row', { has: page.locator(`[data-testid="segment-snapshot-row"][data-id="${snap.id}"]`) }).first()
    assert.equal((await snapTableRow.locator('[data-testid="segment-snapshot-expression"]').innerText()).trim(), snap.expression, 'the snapshot shows another expression than the API’s')
    const snapCsv = snapTableRow.locator('[data-testid="segment-snapshot-csv"]')
    assert.equal(await snapCsv.getAttribute('data-href'), `/v1/segment-snapshots/${snap.id}/members.csv`, 'the snapshot’s CSV points elsewhere')
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 15_000 }), snapCsv.click()])
    const csv = await readFile(await download.path(), 'utf8')
    const csvLines = csv.split('\n').filter((l) => l.trim() !== '')
    assert.equal(csvLines[0], 'person_id', 'the snapshot’s CSV has no person_id header')
    // (checked at the end, so that the pages after this one are checked too)
    const csvIds = csvLines.slice(1)
    let snapshotCsvProblem = ''
    if (csvIds.length !== Number(snap.people)) snapshotCsvProblem = `the snapshot’s CSV has ${csvIds.length} people, the snapshot ${snap.people}: ${csvIds.slice(0, 12).join(' ')}`
    else if (!csvIds.every((id) => /^[1-9]\d*$/.test(id)) || new Set(csvIds).size !== csvIds.length) snapshotCsvProblem = `the snapshot’s CSV has ids that are not distinct person ids: ${csvIds.slice(0, 12).join(' ')}`
    await page.keyboard.press('Escape')
    await page.locator('[data-testid="segment-snapshots-list"]').waitFor({ state: 'hidden', timeout: 10_000 }).catch(() => {})

    // 8. RFM: the 8 classes, with the API's people and GMV.
    await openPage('nav-audience-rfm', 'audience-rfm', 'rfm-error')
    const cells = page.locator('[data-testid="rfm-cell"]')
    assert.equal(await cells.count(), 8, 'the RFM matrix does not have 8 cells')
    const shownClasses = await cells.evaluateAll((els) => els.map((e) => e.getAttribute('data-class')))
    assert.deepEqual([...shownClasses].sort(), [...RFM_CLASSES].sort(), 'the RFM matrix does not show the 8 classes')
    let rfmMatched = false
    let rfmDiff = ''
    for (let i = 0; i < 3 && !rfmMatched; i++) {
      if (i > 0) {
        await page.locator('[data-testid="rfm-refresh"]').click()
        await page.locator('[data-testid="audience-rfm"][data-state="ready"]').waitFor({ timeout: 15_000 })
        await sleep(500)
      }
      const rfm = await api('GET', '/v1/audience/rfm')
      assert.equal(rfm?.cells?.length, 8, 'GET /v1/audience/rfm does not answer 8 cells')
      rfmDiff = ''
      for (const c of rfm.cells) {
        const cell = page.locator(`[data-testid="rfm-cell"][data-class="${c.class}"]`)
        const p = await cell.getAttribute('data-people')
        const g = await cell.getAttribute('data-gmv')
        if (p !== String(c.people) || g !== String(c.gmv_fen)) rfmDiff += ` ${c.class}: shows ${p} people ${g} fen, API ${c.people} / ${c.gmv_fen};`
      }
      rfmMatched = rfmDiff === ''
    }
    assert.ok(rfmMatched, `the RFM matrix is not the API's:${rfmDiff}`)
    for (const dim of ['r', 'f', 'm']) {
      assert.equal(await page.locator(`[data-testid="rfm-threshold-${dim}"]`).count(), 1, `the RFM page does not show the ${dim.toUpperCase()} threshold`)
    }

    // 8b. The thresholds dialog shows the API's settings (read-only for other roles than admin).
    await page.locator('[data-testid="rfm-settings"]').click()
    const rfmSettings = page.locator('[data-testid="audience-settings"][data-section="rfm"]')
    await page.locator('[data-testid="audience-settings"][data-section="rfm"]:is([data-state="ready"], [data-state="error"])').waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`the RFM settings dialog did not open (${e.message})${diag()}`)
    })
    assert.equal(await rfmSettings.getAttribute('data-state'), 'ready', `the RFM settings did not load${diag()}`)
    assert.equal(await rfmSettings.getAttribute('data-readonly'), String(!isAdmin), `the RFM settings are ${isAdmin ? 'read-only for an admin' : 'editable for a ' + tenant.role}`)
    const settingsNow = await api('GET', '/v1/audience/settings')
    for (const dim of ['recency', 'frequency', 'monetary']) {
      const want = settingsNow.rfm[dim]
      const box = rfmSettings.locator(`[data-testid="rfm-setting"][data-dim="${dim}"]`)
      assert.equal(await box.getAttribute('data-mode'), want.mode, `the RFM settings show ${dim} split by ${await box.getAttribute('data-mode')}, the API by ${want.mode}`)
      assert.ok(/\bis-active\b/.test((await box.locator(`[data-testid="rfm-setting-mode-${want.mode}"]`).getAttribute('class')) || ''), `the ${want.mode} choice of ${dim} is not selected`)
      if (want.mode === 'quantile') {
        const shownQ = await box.locator('[data-testid="rfm-setting-quantile"] input').inputValue()
        assert.equal(Number(shownQ), Number(want.quantile), `the RFM settings show the ${dim} quantile ${shownQ}, the API ${want.quantile}`)
      } else {
        const shownV = await box.locator('input[data-testid="rfm-setting-value"], [data-testid="rfm-setting-value"] input').first().inputValue()
        const wantV = dim === 'monetary' ? (Number(want.value) / 100).toFixed(2) : String(want.value)
        assert.equal(shownV, wantV, `the RFM settings show the fixed ${dim} ${shownV}, the API ${want.value}`)
      }
    }
    await page.locator('[data-testid="audience-settings-cancel"]:visible').click()
    await rfmSettings.waitFor({ state: 'hidden', timeout: 10_000 })

    // 9. Lifecycle: the chart renders, with the 7 stages in order.
    await openPage('nav-audience-lifecycle', 'audience-lifecycle', 'lifecycle-error')
    const lifecycle = await api('GET', '/v1/audience/lifecycle')
    assert.deepEqual((lifecycle?.stages || []).map((s) => s.stage), STAGES, 'GET /v1/audience/lifecycle does not answer the 7 stages in order')
    const totalPeople = lifecycle.stages.reduce((a, s) => a + Number(s.people || 0), 0)
    if (totalPeople > 0) {
      await page.locator('[data-testid="lifecycle-chart"][data-rendered="true"]').waitFor({ timeout: 15_000 }).catch((e) => {
        throw new Error(`the lifecycle chart did not render (${e.message})${diag()}`)
      })
      assert.equal(await page.locator('[data-testid="lifecycle-chart"] canvas').count() > 0, true, 'the lifecycle chart has no canvas')
      assert.equal(await page.locator('[data-testid="lifecycle-chart"]').getAttribute('data-stages'), '7', 'the lifecycle chart does not have 7 bars')
    }
    const stagesShown = await page.locator('[data-testid="lifecycle-stage"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-stage')))
    assert.deepEqual(stagesShown, STAGES, 'the lifecycle stages are not shown in order')

    // 9b. The rules dialog shows the API's lifecycle settings; a change the server refuses
    // (churn before dormant) is shown next to its field, and changes nothing.
    await page.locator('[data-testid="lifecycle-settings"]').click()
    const lcSettings = page.locator('[data-testid="audience-settings"][data-section="lifecycle"]')
    await page.locator('[data-testid="audience-settings"][data-section="lifecycle"]:is([data-state="ready"], [data-state="error"])').waitFor({ timeout: 15_000 }).catch((e) => {
      throw new Error(`the lifecycle rules dialog did not open (${e.message})${diag()}`)
    })
    assert.equal(await lcSettings.getAttribute('data-state'), 'ready', `the lifecycle rules did not load${diag()}`)
    for (const [k, v] of Object.entries(settingsNow.lifecycle)) {
      const shown = await lcSettings.locator(`[data-testid="lifecycle-setting"][data-key="${k}"] input`).inputValue()
      assert.equal(Number(shown), Number(v), `the lifecycle rules show ${k} = ${shown}, the API ${v}`)
    }
    if (isAdmin) {
      const churn = lcSettings.locator('[data-testid="lifecycle-setting"][data-key="churn_cycles"] input')
      await churn.fill(String(Math.max(0.5, Number(settingsNow.lifecycle.dormant_cycles) - 0.5)))
      await churn.blur()
      await page.locator('[data-testid="audience-settings-save"]:visible').click()
      const churnItem = lcSettings.locator('.el-form-item', { has: page.locator('[data-testid="lifecycle-setting"][data-key="churn_cycles"]') })
      await churnItem.locator('.el-form-item__error').waitFor({ timeout: 10_000 }).catch(async (e) => {
        const other = await lcSettings.locator('[data-testid="audience-settings-error"]').innerText().catch(() => '')
        throw new Error(`the refused churn_cycles is not shown next to its field${other ? ` (shown above the form: “${other}”)` : ''} (${e.message})${diag()}`)
      })
      assert.ok((await churnItem.locator('.el-form-item__error').innerText()).includes('churn_cycles'), 'the message next to churn_cycles is not the server’s')
    }
    await page.locator('[data-testid="audience-settings-cancel"]:visible').click()
    await lcSettings.waitFor({ state: 'hidden', timeout: 10_000 })
    assert.deepEqual(await api('GET', '/v1/audience/settings'), settingsBefore, 'the audience settings changed during the test')

    // 9c. Verify (admins): the audience rebuilt from the store is the live one.
    if (isAdmin) {
      await page.locator('[data-testid="audience-verify"]').click()
      const verified = page.locator('[data-testid="audience-verify-result"]')
      await verified.waitFor({ timeout: 120_000 }).catch((e) => {
        throw new Error(`verify showed no result (${e.message})${diag()}`)
      })
      const verifyText = await verified.innerText()
      assert.equal(await verified.getAttribute('data-ok'), 'true', `verify found differences: ${verifyText}`)
      assert.ok(Number.isFinite(Number(await verified.getAttribute('data-seconds'))), 'verify does not show the seconds it took')
      assert.ok(verifyText.includes('校验通过') && verifyText.includes('秒'), `verify's result does not say ok with the seconds: ${verifyText}`)
    } else {
      assert.equal(await page.locator('[data-testid="audience-verify"]').count(), 0, `verify is offered to a ${tenant.role}`)
    }

    // 10. KOC: the ranking, and the share for another N.
    await openPage('nav-audience-koc', 'audience-koc', 'koc-error')
    await page.locator('[data-testid="koc-top-10"]').click()
    await page.locator('[data-testid="audience-koc"][data-top-percent="10"]').waitFor({ timeout: 10_000 })
    await page.locator('[data-testid="koc-refresh"]:not(.is-loading)').waitFor({ timeout: 15_000 })
    const koc = await api('GET', '/v1/audience/koc?limit=20&top_percent=10')
    if (koc?.share) {
      const share = page.locator('[data-testid="koc-share"]')
      await share.waitFor({ timeout: 10_000 })
      assert.ok((await share.innerText()).includes('前 10%'), 'the KOC share does not speak of the top 10%')
    }
    assert.equal(await page.locator('[data-testid="koc-person-link"]').count(), (koc?.items || []).length, 'the KOC table does not list the API’s people')

    // 11. A person's audience profile: a member of the saved segment.
    const members = await api('GET', `/v1/segments/${saved.id}/members?limit=1`)
    const somebody = members?.items?.[0] ?? (await api('GET', '/v1/orders?limit=1'))?.items?.[0]?.person_id
    if (somebody !== undefined && somebody !== null) {
      const profile = await api('GET', `/v1/people/${somebody}/audience`)
      await page.goto(`${BASE}/#/people/${somebody}`)
      const card = page.locator('[data-testid="person-audience"]')
      await page.locator('[data-testid="person-audience"][data-state="ready"], [data-testid="person-audience"][data-state="error"]').waitFor({ timeout: 15_000 }).catch((e) => {
        throw new Error(`person ${somebody} shows no audience profile (${e.message})${diag()}`)
      })
      assert.equal(await card.getAttribute('data-state'), 'ready', `the audience profile of person ${somebody} failed to load${diag()}`)
      assert.equal(await card.locator('[data-testid="person-audience-stage"]').getAttribute('data-stage'), profile.stage, 'the profile shows another stage')
      assert.equal(await card.locator('[data-testid="person-audience-rfm"]').getAttribute('data-class'), profile.rfm?.class || '', 'the profile shows another RFM class')
      if ((profile.segments || []).map(String).includes(String(saved.id))) {
        assert.ok((await card.locator('[data-testid="person-audience-segments"]').innerText()).includes(segmentName), `the profile does not name the segment ${segmentName}`)
      }
      const tagNames = await card.locator('[data-testid="person-audience-tag"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-id')))
      assert.deepEqual([...tagNames].sort(), (profile.tags || []).map(String).sort(), 'the profile shows other tags than the API')
    }

    // 12. English.
    await page.locator('[data-testid="lang-switch"]').click()
    await page.locator('[data-testid="lang-option-en"]').click()
    await page.locator('[data-testid="side-menu"]', { hasText: 'Segments' }).waitFor({ timeout: 10_000 })
    const menuEn = await page.locator('[data-testid="side-menu"]').innerText()
    for (const label of ['Audience', 'Tags', 'Segments', 'RFM matrix', 'Lifecycle']) {
      assert.ok(menuEn.includes(label), `the menu has no “${label}” entry in English`)
    }
    await page.locator('[data-testid="lang-switch"]').click()
    await page.locator('[data-testid="lang-option-zh-CN"]').click()

    assert.equal(snapshotCsvProblem, '', snapshotCsvProblem)
    const pageErrors = problems.filter((p) => p.startsWith('page error'))
    assert.deepEqual(pageErrors, [], 'uncaught errors in the page')
  } finally {
    if (SCREENSHOT && page) {
      await mkdir(dirname(SCREENSHOT), { recursive: true }).catch(() => {})
      await page.screenshot({ path: SCREENSHOT, fullPage: true }).catch((e) => console.error(`screenshot failed: ${e.message}`))
    }
    await browser.close()
    if (savedId) await api('DELETE', `/v1/segments/${savedId}`).catch((e) => console.error(`could not delete the test segment ${savedId}: ${e.message}`))
    if (importTagId === null) importTagId = (await api('GET', '/v1/tags').catch(() => null))?.items?.find((x) => x.name === importTag)?.id ?? null
    if (importTagId !== null) await api('DELETE', `/v1/tags/${importTagId}`).catch((e) => console.error(`could not delete the imported tag ${importTag}: ${e.message}`))
    await call('POST', '/v1/auth/logout', { token: login.token, body: {} }).catch(() => {})
  }
})
