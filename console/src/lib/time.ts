// Times as people read them: "3 min ago" in the list, the exact local time on hover.

const STEPS: [number, string][] = [
  [60, "s"],
  [3600, "min"],
  [86_400, "h"],
  [30 * 86_400, "d"],
  [365 * 86_400, "mo"],
];
const SIZES: Record<string, number> = { s: 1, min: 60, h: 3600, d: 86_400, mo: 30 * 86_400 };

export function relative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "—";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "—";
  const seconds = Math.round((now - then) / 1000);
  const future = seconds < 0;
  const s = Math.abs(seconds);
  if (s < 5) return "just now";
  const step = STEPS.find(([limit]) => s < limit);
  const text = step
    ? `${Math.floor(s / SIZES[step[1]])} ${step[1]}`
    : `${Math.floor(s / (365 * 86_400))} y`;
  return future ? `in ${text}` : `${text} ago`;
}

export function exact(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? ""
    : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function duration(startIso: string | null, endIso: string | null, now = Date.now()): string {
  if (!startIso) return "—";
  const ms = (endIso ? Date.parse(endIso) : now) - Date.parse(startIso);
  if (!(ms >= 0)) return "—";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** "24h", "7d", "30m" -> the ISO time that long before ``now``; anything else -> undefined. */
export function since(window: string | undefined, now = Date.now()): string | undefined {
  const match = /^(\d+)([mhd])$/.exec(window ?? "");
  if (!match) return undefined;
  const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "m" | "h" | "d"];
  return new Date(now - Number(match[1]) * unit).toISOString();
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export function percent(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined ? "—" : `${value.toFixed(digits)} %`;
}
