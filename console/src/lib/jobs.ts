// The jobs list's own logic: filters to and from the page's URL and the API's query,
// and live updates folded into the rows shown (pure functions, tested in jobs.test.ts).

import type { Query } from "./api";
import { since as sinceTime } from "./time";

export type JobState = "pending" | "running" | "succeeded" | "failed" | "cancelled";
export const JOB_STATES: JobState[] = ["pending", "running", "succeeded", "failed", "cancelled"];
export const TERMINAL: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);

export interface Job {
  id: string;
  jobType: string | null;
  tenantId: string;
  status: JobState;
  progressPercent: number;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  errorMessage: string | null;
  metadata: Record<string, string | number | boolean | null>;
  attempt: number;
  retryOf: string | null;
  serviceName: string | null;
  lastReportAt: string;
  flags: string[];
}

export interface JobRow extends Job {
  eventId: number; // the newest hub event folded in; older replayed ones are ignored
}

export interface JobFilters {
  status: string;
  type: string;
  since: string; // "1h", "24h", "7d" or ""
  q: string;
  flag: string;
  cursor: string;
}

const KEYS: (keyof JobFilters)[] = ["status", "type", "since", "q", "flag", "cursor"];

export function filtersFromQuery(query: Record<string, unknown>): JobFilters {
  const one = (v: unknown): string => (Array.isArray(v) ? String(v[0] ?? "") : v ? String(v) : "");
  return Object.fromEntries(KEYS.map((k) => [k, one(query[k])])) as unknown as JobFilters;
}

export function filtersToQuery(filters: JobFilters): Record<string, string> {
  return Object.fromEntries(KEYS.filter((k) => filters[k]).map((k) => [k, filters[k]]));
}

export function apiQuery(filters: JobFilters, tenant: string, limit: number, now = Date.now()): Query {
  return {
    status: filters.status || undefined,
    jobType: filters.type || undefined,
    since: sinceTime(filters.since, now),
    q: filters.q || undefined,
    flag: filters.flag || undefined,
    cursor: filters.cursor || undefined,
    tenant: tenant || undefined,
    limit,
  };
}

export interface StatusUpdate {
  jobId: string;
  status: JobState;
  progress: number;
  eventId: number;
}

export function parseStatusChanged(args: unknown[]): StatusUpdate | null {
  const [jobId, status, progress, eventId] = args;
  if (typeof jobId !== "string" || typeof status !== "string") return null;
  return {
    jobId,
    status: status as JobState,
    progress: typeof progress === "number" ? progress : 0,
    eventId: typeof eventId === "number" ? eventId : 0,
  };
}

/** Fold ``updates`` into ``rows`` in place; answers the job ids the rows do not hold
 * (the page decides whether to fetch them) and those that just ended (their error and
 * completion time come with a fetch). */
export function applyUpdates(
  rows: JobRow[],
  updates: StatusUpdate[],
): { unknown: string[]; ended: string[] } {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const unknown = new Set<string>();
  const ended = new Set<string>();
  for (const u of updates) {
    const row = byId.get(u.jobId);
    if (!row) {
      unknown.add(u.jobId);
      continue;
    }
    if (u.eventId && u.eventId <= row.eventId) continue; // replayed after a newer one
    const wasTerminal = TERMINAL.has(row.status);
    row.status = u.status;
    row.progressPercent = u.progress;
    row.eventId = u.eventId || row.eventId;
    if (TERMINAL.has(u.status) && !wasTerminal) ended.add(u.jobId);
  }
  return { unknown: [...unknown], ended: [...ended] };
}

/** Whether a job that appeared live belongs on the page as filtered: only the first page
 * of a list without a text search or flag (the API's rules for those are the API's). */
export function belongsOnFirstPage(job: Job, filters: JobFilters, tenant: string, now = Date.now()): boolean {
  if (filters.cursor || filters.q || filters.flag) return false;
  if (tenant && job.tenantId !== tenant) return false;
  if (filters.status && job.status !== filters.status) return false;
  if (filters.type && job.jobType !== filters.type) return false;
  const from = sinceTime(filters.since, now);
  return !(from && job.createdAt < from);
}

/** Put ``job`` in its place (newest first), replacing its old row, keeping ``limit`` rows. */
export function upsertRow(rows: JobRow[], job: Job, eventId: number, limit: number): JobRow[] {
  const existing = rows.find((r) => r.id === job.id && r.tenantId === job.tenantId);
  const row: JobRow = { ...job, eventId: Math.max(eventId, existing?.eventId ?? 0) };
  const others = rows.filter((r) => r !== existing);
  const at = others.findIndex((r) => r.createdAt < job.createdAt);
  others.splice(at === -1 ? others.length : at, 0, row);
  return others.slice(0, limit);
}
