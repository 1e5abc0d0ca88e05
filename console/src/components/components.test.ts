import { mount } from "@vue/test-utils";
import { describe, expect, it } from "vitest";
import { nextTick } from "vue";
import { live } from "../lib/live";
import { applyServiceEvent, overallHealth, type Service } from "../lib/services";
import LiveIndicator from "./LiveIndicator.vue";
import ProgressBar from "./ProgressBar.vue";
import StatusPill from "./StatusPill.vue";

describe("LiveIndicator", () => {
  it("says live, reconnecting or offline, as its data-state tells the tests", async () => {
    live.state = "live";
    const wrapper = mount(LiveIndicator);
    expect(wrapper.attributes("data-state")).toBe("live");
    expect(wrapper.text()).toBe("Live");
    live.state = "reconnecting";
    live.since = Date.now();
    await nextTick();
    expect(wrapper.attributes("data-state")).toBe("reconnecting");
    expect(wrapper.text()).toMatch(/^Reconnecting \(\d+ s\)$/);
    live.state = "offline";
    await nextTick();
    expect(wrapper.text()).toBe("Offline");
    wrapper.unmount();
  });
});

describe("ProgressBar and StatusPill", () => {
  it("expose the value to assistive technology and colour by meaning", () => {
    const bar = mount(ProgressBar, { props: { value: 40, label: "progress of j1" } });
    expect(bar.attributes("role")).toBe("progressbar");
    expect(bar.attributes("aria-valuenow")).toBe("40");
    expect(bar.attributes("aria-label")).toBe("progress of j1");
    expect(mount(StatusPill, { props: { status: "failed" } }).classes()).toContain("bad");
    expect(mount(StatusPill, { props: { status: "up" } }).classes()).toContain("good");
    expect(mount(StatusPill, { props: { status: "something new" } }).classes()).toContain("neutral");
  });
});

describe("services, live", () => {
  it("take a status change or resource sample in place, and say when a service is new", () => {
    const services = [{ id: "s1", name: "erp", status: "up", resources: null } as unknown as Service];
    expect(applyServiceEvent(services, "ServiceStatusChanged", ["s1", "erp", "down", 9])).toBe(true);
    expect(services[0].status).toBe("down");
    expect(applyServiceEvent(services, "ResourceMetricsUpdated", ["s1", { cpuPercent: 12.5 }, 10])).toBe(true);
    expect(services[0].resources?.cpuPercent).toBe(12.5);
    expect(applyServiceEvent(services, "ServiceStatusChanged", ["s2", "pim", "down", 11])).toBe(false);
  });
});

describe("overall health", () => {
  it("is the worst of the components and the services", () => {
    expect(overallHealth("unknown", { total: 1, down: 1, degraded: 0 })).toBe("unhealthy");
    expect(overallHealth("healthy", { total: 3, down: 0, degraded: 1 })).toBe("degraded");
    expect(overallHealth("unhealthy", { total: 3, down: 0, degraded: 0 })).toBe("unhealthy");
    expect(overallHealth("healthy", { total: 0, down: 0, degraded: 0 })).toBe("healthy");
    expect(overallHealth("unknown", { total: 0, down: 0, degraded: 0 })).toBe("unknown");
  });
});
