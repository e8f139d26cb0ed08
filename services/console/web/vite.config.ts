import { defineConfig } from 'vite';

// The bundle goes to ../assets, which the Rust binary embeds; it is
// committed, and `just lint` rebuilds it to check that it matches src/.
export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: '../assets',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: { '/api': { target: process.env.VELTRIX_CONSOLE_URL ?? 'http://127.0.0.1:8080', changeOrigin: false } },
  },
});
