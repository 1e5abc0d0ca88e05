// Connected services as the API answers them.
export interface Resources {
  cpuPercent: number | null;
  cpuAverage: number | null;
  cpuPeak: number | null;
  memoryUsedBytes: number | null;
  memoryTotalBytes: number | null;
  memoryPercent: number | null;
  memoryPeakBytes: number | null;
  connectionPoolActive: number | null;
  connectionPoolTotal: number | null;
  threadCount: number | null;
  queueDepth: number | null;
  timestamp: string | null;
  windowSeconds: number;
}
export interface Service {
  id: string;
  name: string;
  type: string;
  tenantId: string;
  endpoint: string | null;
  status: string;
  lastChecked: string | null;
  lastSuccessful: string | null;
  averageLatencyMs: number | null;
  lastLatencyMs: number | null;
  lastError: string | null;
  uptimePercent: number | null;
  uptime: { last24h: number | null; last7d: number | null; last30d: number | null };
  resources: Resources | null;
  declared: boolean;
}

/** Fold a ``ServiceStatusChanged`` or ``ResourceMetricsUpdated`` into the list in place;
 * false when the service is not in it (the page reloads to learn about it). */
export function applyServiceEvent(
  services: Service[],
  target: "ServiceStatusChanged" | "ResourceMetricsUpdated",
  args: unknown[],
): boolean {
  const service = services.find((s) => s.id === args[0]);
  if (!service) return false;
  if (target === "ServiceStatusChanged" && typeof args[2] === "string") service.status = args[2];
  if (target === "ResourceMetricsUpdated" && typeof args[1] === "object" && args[1] !== null) {
    service.resources = args[1] as Resources;
  }
  return true;
}

const RANK = ["healthy", "unknown", "degraded", "unhealthy"];

/** The overview's one word: the worst of the components' status and the services' (a
 * service down counts as unhealthy, degraded as degraded); unknown when nothing reports. */
export function overallHealth(
  components: string,
  services: { total: number; down: number; degraded: number },
): string {
  const fromServices =
    services.down > 0 ? "unhealthy" : services.degraded > 0 ? "degraded" : services.total > 0 ? "healthy" : "unknown";
  if (components === "unknown") return fromServices;
  if (fromServices === "unknown") return components;
  return RANK.indexOf(components) >= RANK.indexOf(fromServices) ? components : fromServices;
}
