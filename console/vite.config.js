import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The siyu server (`siyu serve`) serves console/dist at `/` and the API under `/v1`
// on the same origin. For development, `npm run dev` proxies the API to a local
// server; override the target with SIYU_API=http://host:port.
const apiTarget = process.env.SIYU_API || 'http://127.0.0.1:8080'
const proxy = {
  '/v1': { target: apiTarget, changeOrigin: false },
  '/healthz': { target: apiTarget, changeOrigin: false },
}

export default defineConfig({
  // Relative asset URLs: works when served at `/` and from any sub-path.
  base: './',
  plugins: [vue()],
  define: {
    __VUE_I18N_FULL_INSTALL__: true,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy,
  },
  preview: {
    host: '127.0.0.1',
    port: 4173,
    proxy,
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        manualChunks(id) {
          if (!id.includes('node_modules')) return undefined
          if (id.includes('/echarts/') || id.includes('/zrender/')) return 'echarts'
          if (id.includes('/element-plus/') || id.includes('/@element-plus/')) return 'element-plus'
          return 'vendor'
        },
      },
    },
  },
})
