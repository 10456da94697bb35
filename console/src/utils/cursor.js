import { reactive } from 'vue'

/**
 * State for a cursor-paged list (`?limit=&after=` → `{items, next_after}`).
 * `cursors[i]` is the `after` used for page i+1 (null for the first page).
 */
export function useCursorList(fetchPage, { limit = 20 } = {}) {
  const s = reactive({
    items: [],
    loading: false,
    error: null,
    loaded: false,
    limit,
    cursors: [null],
    page: 1,
    nextAfter: null,
  })
  let seq = 0

  async function loadPage(pageIndex) {
    const mine = ++seq
    s.loading = true
    s.error = null
    try {
      const res = await fetchPage({ limit: s.limit, after: s.cursors[pageIndex] ?? undefined })
      if (mine !== seq) return
      s.items = Array.isArray(res?.items) ? res.items : []
      s.nextAfter = res?.next_after ?? null
      s.page = pageIndex + 1
      s.cursors.length = pageIndex + 1
      s.loaded = true
    } catch (e) {
      if (mine !== seq) return
      s.error = e
      throw e
    } finally {
      if (mine === seq) s.loading = false
    }
  }

  return {
    state: s,
    reload: () => loadPage(s.page - 1),
    first: () => {
      s.cursors = [null]
      return loadPage(0)
    },
    next: () => {
      if (s.nextAfter === null) return Promise.resolve()
      s.cursors[s.page] = s.nextAfter
      return loadPage(s.page)
    },
    prev: () => (s.page > 1 ? loadPage(s.page - 2) : Promise.resolve()),
    setLimit: (n) => {
      s.limit = n
      s.cursors = [null]
      return loadPage(0)
    },
  }
}
