import { createApp } from 'vue'
import ElementPlus, { ElMessage } from 'element-plus'
import 'element-plus/dist/index.css'
import './styles/main.css'
import App from './App.vue'
import { i18n, t } from './i18n/index.js'
import { router } from './router.js'
import { onUnauthorized } from './api/client.js'
import { clearSession } from './store/session.js'

// Any 401 on an authenticated call: drop the session and go back to the login page.
onUnauthorized(() => {
  clearSession()
  const current = router.currentRoute.value
  if (current.name !== 'login') {
    ElMessage.warning({ message: t('auth.sessionExpired'), grouping: true })
    router.replace({ name: 'login', query: { redirect: current.fullPath } })
  }
})

createApp(App).use(i18n).use(router).use(ElementPlus).mount('#app')
