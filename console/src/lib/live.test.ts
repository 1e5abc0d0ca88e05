import { describe, expect, it, vi } from "vitest";
import { afterResume, dispatch, live, on, refetchOn, retryPolicy } from "./live";

describe("the hub's events", () => {
  it("reach their handlers with the event id last, which is kept for Resume", () => {
    const seen = vi.fn();
    const off = on("JobStatusChanged", seen);
    dispatch("JobStatusChanged", ["j1", "running", 40, 12]);
    dispatch("JobStatusChanged", ["j1", "running", 30, 11]); // replayed late
    off();
    dispatch("JobStatusChanged", ["j1", "succeeded", 100, 13]);
    expect(seen.mock.calls).toEqual([
      ["j1", "running", 40, 12],
      ["j1", "running", 30, 11],
    ]);
    expect(live.lastEventId).toBe(13);
  });

  it("a failing handler does not keep the others from their event", () => {
    const good = vi.fn();
    const offs = [on("AlertTriggered", () => { throw new Error("boom"); }), on("AlertTriggered", good)];
    vi.spyOn(console, "error").mockImplementation(() => {});
    dispatch("AlertTriggered", [{ id: "a" }, 20]);
    offs.forEach((off) => off());
    expect(good).toHaveBeenCalledOnce();
  });

  it("a burst makes one refresh", async () => {
    vi.useFakeTimers();
    const refresh = vi.fn();
    const off = refetchOn(["HealthStatusChanged"], refresh, 1000);
    for (let i = 0; i < 50; i++) dispatch("HealthStatusChanged", ["db", "degraded", 100 + i]);
    vi.advanceTimersByTime(1000);
    expect(refresh).toHaveBeenCalledOnce();
    off();
    vi.useRealTimers();
  });
});

describe("after a reconnect", () => {
  it("reloads only when Resume says so", () => {
    expect(afterResume({ reload: true })).toBe("reload");
    expect(afterResume({ replayed: 3 })).toBe("caught-up");
    expect(afterResume(null)).toBe("caught-up");
  });

  it("retries for ever, backing off to 10 s", () => {
    const delay = (n: number) =>
      retryPolicy.nextRetryDelayInMilliseconds({ previousRetryCount: n, elapsedMilliseconds: 0, retryReason: new Error() });
    expect([0, 1, 2, 3, 4, 5, 50, 5000].map(delay)).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  });
});
