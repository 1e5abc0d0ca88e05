import { describe, expect, it } from "vitest";
import { bytes, duration, relative, since } from "./time";

const NOW = Date.parse("2026-12-06T12:00:00Z");

describe("relative", () => {
  it.each([
    ["2026-12-06T12:00:00Z", "just now"],
    ["2026-12-06T11:59:30Z", "30 s ago"],
    ["2026-12-06T11:57:00Z", "3 min ago"],
    ["2026-12-06T09:00:00Z", "3 h ago"],
    ["2026-12-04T12:00:00Z", "2 d ago"],
    ["2026-09-06T12:00:00Z", "3 mo ago"],
    ["2024-12-06T12:00:00Z", "2 y ago"],
    ["2026-12-06T12:10:00Z", "in 10 min"],
  ])("%s is %s", (iso, text) => {
    expect(relative(iso, NOW)).toBe(text);
  });

  it("says nothing for a missing or broken time", () => {
    expect(relative(null, NOW)).toBe("—");
    expect(relative("not a time", NOW)).toBe("—");
  });
});

describe("since", () => {
  it("turns a window into the time that long ago", () => {
    expect(since("24h", NOW)).toBe("2026-12-05T12:00:00.000Z");
    expect(since("7d", NOW)).toBe("2026-11-29T12:00:00.000Z");
    expect(since("30m", NOW)).toBe("2026-12-06T11:30:00.000Z");
  });
  it("ignores anything else", () => {
    expect(since("", NOW)).toBeUndefined();
    expect(since("1w", NOW)).toBeUndefined();
    expect(since(undefined, NOW)).toBeUndefined();
  });
});

describe("duration and bytes", () => {
  it("reads as people say it", () => {
    expect(duration("2026-12-06T11:00:00Z", "2026-12-06T11:00:42Z")).toBe("42 s");
    expect(duration("2026-12-06T11:00:00Z", "2026-12-06T11:05:03Z")).toBe("5 min 3 s");
    expect(duration("2026-12-06T09:00:00Z", "2026-12-06T11:30:00Z")).toBe("2 h 30 min");
    expect(duration(null, null)).toBe("—");
    expect(duration("2026-12-06T11:00:00Z", null, NOW)).toBe("1 h 0 min");
    expect(bytes(512)).toBe("512 B");
    expect(bytes(1536)).toBe("1.5 kB");
    expect(bytes(300 * 1024 * 1024)).toBe("300 MB");
    expect(bytes(null)).toBe("—");
  });
});
