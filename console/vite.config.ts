import vue from "@vitejs/plugin-vue";
import { defineConfig } from "vitest/config";

// `npm run dev` serves the console with hot reload against a running admin API
// (B2C_API_URL, default the local stack's): the API and the hub are proxied, so the
// browser still sees one origin.
const api = process.env.B2C_API_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/console/",
  plugins: [vue()],
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 400 },
  server: {
    proxy: {
      "/api": api,
      "/hubs": { target: api, ws: true },
    },
  },
  test: { environment: "happy-dom", include: ["src/**/*.test.ts"] },
});
