import { ElMessage } from 'element-plus'

/** Show an API error's message (401s are handled by the session redirect). */
export function showError(e) {
  if (!e || e.handled || e.name === 'AbortError') return
  ElMessage.error({ message: e.message || String(e), grouping: true, duration: 5000 })
}
