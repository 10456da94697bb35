import { createRouter, createWebHashHistory } from 'vue-router'
import { session } from './store/session.js'
import { ensureIdentity } from './api/auth.js'
import MainLayout from './layouts/MainLayout.vue'
import LoginView from './views/LoginView.vue'
import OverviewView from './views/OverviewView.vue'

// Hash history: deep links work whether or not the server falls back to
// index.html for unknown paths (docs/api.md does not say it does).
const routes = [
  { path: '/login', name: 'login', component: LoginView, meta: { public: true, title: 'auth.welcome' } },
  {
    path: '/',
    component: MainLayout,
    children: [
      { path: '', redirect: { name: 'overview' } },
      { path: 'overview', name: 'overview', component: OverviewView, meta: { title: 'nav.overview' } },
      { path: 'channels', name: 'channels', component: () => import('./views/ChannelsView.vue'), meta: { title: 'nav.channels' } },
      { path: 'channels/report', name: 'channel-report', component: () => import('./views/ChannelReportView.vue'), meta: { title: 'nav.channelReport' } },
      { path: 'people', name: 'people', component: () => import('./views/PeopleView.vue'), meta: { title: 'nav.people' } },
      { path: 'people/:id', name: 'person', component: () => import('./views/PersonView.vue'), meta: { title: 'nav.person' } },
      {
        path: 'identity/quarantine',
        name: 'identity-quarantine',
        component: () => import('./views/IdentityQuarantineView.vue'),
        meta: { title: 'identity.navTitle' },
      },
      { path: 'audience', redirect: { name: 'audience-segments' } },
      { path: 'audience/tags', name: 'audience-tags', component: () => import('./views/AudienceTagsView.vue'), meta: { title: 'audience.nav.tags' } },
      { path: 'audience/segments', name: 'audience-segments', component: () => import('./views/AudienceSegmentsView.vue'), meta: { title: 'audience.nav.segments' } },
      { path: 'audience/rfm', name: 'audience-rfm', component: () => import('./views/AudienceRfmView.vue'), meta: { title: 'audience.nav.rfm' } },
      { path: 'audience/lifecycle', name: 'audience-lifecycle', component: () => import('./views/AudienceLifecycleView.vue'), meta: { title: 'audience.nav.lifecycle' } },
      { path: 'audience/koc', name: 'audience-koc', component: () => import('./views/AudienceKocView.vue'), meta: { title: 'audience.nav.koc' } },
      { path: 'orders', name: 'orders', component: () => import('./views/OrdersView.vue'), meta: { title: 'nav.orders' } },
      { path: 'api-keys', name: 'api-keys', component: () => import('./views/ApiKeysView.vue'), meta: { title: 'nav.apiKeys' } },
      { path: ':pathMatch(.*)*', name: 'not-found', component: () => import('./views/NotFoundView.vue') },
    ],
  },
]

export const router = createRouter({
  history: createWebHashHistory(),
  routes,
})

router.beforeEach(async (to) => {
  if (to.meta.public) {
    if (to.name === 'login' && session.token) {
      try {
        if (await ensureIdentity()) return { name: 'overview' }
      } catch {
        // server unreachable: stay on the login page
      }
    }
    return true
  }
  if (!session.token) {
    return { name: 'login', query: to.fullPath && to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  }
  try {
    const ok = await ensureIdentity()
    if (!ok) return { name: 'login', query: { redirect: to.fullPath } }
  } catch {
    // the server could not be reached; let the page show its own error state
  }
  return true
})
