import { describe, expect, it } from "vitest";
import {
  apiQuery,
  applyUpdates,
  belongsOnFirstPage,
  filtersFromQuery,
  filtersToQuery,
  parseStatusChanged,
  upsertRow,
  type Job,
  type JobRow,
} from "./jobs";

const NOW = Date.parse("2026-12-06T12:00:00Z");

function job(id: string, patch: Partial<Job> = {}): Job {
  return {
    id,
    jobType: "ERP_SYNC",
    tenantId: "acme",
    status: "running",
    progressPercent: 10,
    createdAt: "2026-12-06T11:00:00Z",
    startedAt: "2026-12-06T11:00:01Z",
    completedAt: null,
    errorMessage: null,
    metadata: {},
    attempt: 1,
    retryOf: null,
    serviceName: "erp-connector",
    lastReportAt: "2026-12-06T11:00:05Z",
    flags: [],
    ...patch,
  };
}
const row = (id: string, patch: Partial<JobRow> = {}): JobRow => ({ ...job(id), eventId: 0, ...patch });
const none = filtersFromQuery({});

describe("filters", () => {
  it("round-trip through the page's URL, dropping empty ones", () => {
    const filters = filtersFromQuery({ status: "failed", type: "ERP_SYNC", since: "24h", q: ["timeout", "x"] });
    expect(filters).toEqual({ status: "failed", type: "ERP_SYNC", since: "24h", q: "timeout", flag: "", cursor: "" });
    expect(filtersToQuery(filters)).toEqual({ status: "failed", type: "ERP_SYNC", since: "24h", q: "timeout" });
  });

  it("become the API's query, in its own names", () => {
    const filters = filtersFromQuery({ status: "failed", type: "PIM_IMPORT", since: "1h", flag: "stalled" });
    expect(apiQuery(filters, "acme", 50, NOW)).toEqual({
      status: "failed",
      jobType: "PIM_IMPORT",
      since: "2026-12-06T11:00:00.000Z",
      q: undefined,
      flag: "stalled",
      cursor: undefined,
      tenant: "acme",
      limit: 50,
    });
  });
});

describe("live updates", () => {
  it("parse JobStatusChanged's arguments and refuse anything else", () => {
    expect(parseStatusChanged(["j1", "failed", 40, 17])).toEqual({ jobId: "j1", status: "failed", progress: 40, eventId: 17 });
    expect(parseStatusChanged([42, "failed"])).toBeNull();
  });

  it("move a row in place and tell which ended and which are unknown", () => {
    const rows = [row("a"), row("b")];
    const result = applyUpdates(rows, [
      { jobId: "a", status: "running", progress: 60, eventId: 5 },
      { jobId: "b", status: "failed", progress: 10, eventId: 6 },
      { jobId: "c", status: "pending", progress: 0, eventId: 7 },
    ]);
    expect(rows.map((r) => [r.id, r.status, r.progressPercent, r.eventId])).toEqual([
      ["a", "running", 60, 5],
      ["b", "failed", 10, 6],
    ]);
    expect(result).toEqual({ unknown: ["c"], ended: ["b"] });
  });

  it("ignore an event replayed after a newer one (Resume can deliver it late)", () => {
    const rows = [row("a", { status: "succeeded", progressPercent: 100, eventId: 9 })];
    const result = applyUpdates(rows, [{ jobId: "a", status: "running", progress: 50, eventId: 8 }]);
    expect(rows[0].status).toBe("succeeded");
    expect(rows[0].progressPercent).toBe(100);
    expect(result.ended).toEqual([]);
  });

  it("report a job that ends once, not on every later event", () => {
    const rows = [row("a", { status: "failed", eventId: 3 })];
    expect(applyUpdates(rows, [{ jobId: "a", status: "failed", progress: 10, eventId: 4 }]).ended).toEqual([]);
  });
});

describe("new jobs on the first page", () => {
  it("belong when they match the filters", () => {
    expect(belongsOnFirstPage(job("n"), none, "", NOW)).toBe(true);
    expect(belongsOnFirstPage(job("n"), filtersFromQuery({ status: "running", type: "ERP_SYNC", since: "24h" }), "acme", NOW)).toBe(true);
  });

  it("do not belong on another status, type, tenant, time, a later page, a search or a flag", () => {
    for (const query of [{ status: "failed" }, { type: "CRM_EXPORT" }, { since: "30m" }, { cursor: "x" }, { q: "timeout" }, { flag: "stalled" }]) {
      expect(belongsOnFirstPage(job("n"), filtersFromQuery(query), "", NOW)).toBe(false);
    }
    expect(belongsOnFirstPage(job("n"), none, "globex", NOW)).toBe(false);
  });

  it("are placed newest first, replace their old row and keep the page's size", () => {
    const rows = [row("new", { createdAt: "2026-12-06T11:30:00Z" }), row("old", { createdAt: "2026-12-06T10:00:00Z" })];
    const placed = upsertRow(rows, job("mid", { createdAt: "2026-12-06T11:00:00Z" }), 4, 3);
    expect(placed.map((r) => r.id)).toEqual(["new", "mid", "old"]);
    const trimmed = upsertRow(placed, job("newest", { createdAt: "2026-12-06T11:59:00Z" }), 5, 3);
    expect(trimmed.map((r) => r.id)).toEqual(["newest", "new", "mid"]);
    const replaced = upsertRow(trimmed, job("mid", { createdAt: "2026-12-06T11:00:00Z", status: "failed" }), 2, 3);
    expect(replaced.filter((r) => r.id === "mid")).toHaveLength(1);
    expect(replaced.find((r) => r.id === "mid")?.status).toBe("failed");
    expect(replaced.find((r) => r.id === "mid")?.eventId).toBe(4);
  });
});
