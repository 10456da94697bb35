import { onBeforeUnmount, onMounted } from 'vue'

/**
 * Call `fn` every `ms` while the page is visible (and at once when it becomes visible again);
 * nothing while the tab is hidden. Calls never overlap. For use in a component's setup.
 */
export function useVisiblePolling(fn, ms) {
  let timer = null
  let running = false
  async function tick() {
    if (running || document.visibilityState !== 'visible') return
    running = true
    try {
      await fn()
    } catch {
      // the caller shows its own errors
    } finally {
      running = false
    }
  }
  function onVisibility() {
    if (document.visibilityState === 'visible') tick()
  }
  onMounted(() => {
    timer = setInterval(tick, ms)
    document.addEventListener('visibilitychange', onVisibility)
  })
  onBeforeUnmount(() => {
    clearInterval(timer)
    document.removeEventListener('visibilitychange', onVisibility)
  })
}
