import { createRouter, createWebHistory } from "vue-router";
import { endSession, restore } from "./lib/session";
import { describe } from "./lib/api";

export const router = createRouter({
  history: createWebHistory("/console/"),
  routes: [
    { path: "/sign-in", name: "sign-in", component: () => import("./views/SignIn.vue"), meta: { public: true } },
    { path: "/", name: "overview", component: () => import("./views/Overview.vue") },
    { path: "/jobs", name: "jobs", component: () => import("./views/Jobs.vue") },
    { path: "/jobs/:id", name: "job", component: () => import("./views/JobDetail.vue"), props: true },
    { path: "/services", name: "services", component: () => import("./views/Services.vue") },
    { path: "/services/:id", name: "service", component: () => import("./views/ServiceDetail.vue"), props: true },
    { path: "/health", name: "health", component: () => import("./views/Health.vue") },
    { path: "/alerts", name: "alerts", component: () => import("./views/Alerts.vue") },
    { path: "/:rest(.*)", redirect: "/" },
  ],
});

router.beforeEach(async (to) => {
  if (to.meta.public) return true;
  try {
    if (await restore()) return true;
  } catch (error) {
    endSession(describe(error));
  }
  return { name: "sign-in", query: to.fullPath !== "/" ? { next: to.fullPath } : {} };
});
