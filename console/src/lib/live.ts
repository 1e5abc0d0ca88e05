// The one hub connection of the console (/hubs/job-status, the SignalR JSON protocol):
// its state for the indicator, the last event id for Resume after a reconnect, and the
// page handlers that receive events. Every event's last argument is its id.

import * as signalR from "@microsoft/signalr";
import { reactive } from "vue";

export type LiveState = "connecting" | "live" | "reconnecting" | "offline";
export const TARGETS = [
  "JobStatusChanged",
  "HealthStatusChanged",
  "AlertTriggered",
  "ResourceMetricsUpdated",
  "ResourceAlertTriggered",
  "ServiceStatusChanged",
  "JobCommandExpired",
] as const;
export type Target = (typeof TARGETS)[number];
export type Handler = (...args: unknown[]) => void;

export const live = reactive({
  state: "offline" as LiveState,
  lastEventId: 0,
  since: Date.now(), // when the state last changed, for "reconnecting for 12 s"
  message: "",
});

const handlers = new Map<Target, Set<Handler>>();
const reloaders = new Set<() => void>();

/** Receive ``target``'s events (arguments as sent, the event id last) until the returned
 * function is called. */
export function on(target: Target, handler: Handler): () => void {
  let set = handlers.get(target);
  if (!set) handlers.set(target, (set = new Set()));
  set.add(handler);
  return () => set.delete(handler);
}

/** ``refresh`` at most once per ``ms`` while any of ``targets`` keeps arriving: for pages
 * that show counts or aggregates and simply read them again. */
export function refetchOn(targets: Target[], refresh: () => void, ms = 1000): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const schedule = (): void => {
    if (timer === null) timer = setTimeout(() => ((timer = null), refresh()), ms);
  };
  const offs = [...targets.map((t) => on(t, schedule)), onReload(refresh)];
  return () => {
    offs.forEach((off) => off());
    if (timer !== null) clearTimeout(timer);
  };
}

/** Called when events may have been missed and cannot be replayed: reload page state. */
export function onReload(reload: () => void): () => void {
  reloaders.add(reload);
  return () => reloaders.delete(reload);
}

function setState(state: LiveState, message = ""): void {
  if (live.state !== state) live.since = Date.now();
  live.state = state;
  live.message = message;
}

export function dispatch(target: Target, args: unknown[]): void {
  const id = args[args.length - 1];
  if (typeof id === "number" && id > live.lastEventId) live.lastEventId = id;
  for (const handler of handlers.get(target) ?? []) {
    try {
      handler(...args);
    } catch (error) {
      console.error(`a ${target} handler failed`, error);
    }
  }
}

function reloadAll(): void {
  reloaders.forEach((reload) => reload());
}

/** What to do after a reconnect, from Resume's answer (pure, for the tests). */
export function afterResume(answer: unknown): "reload" | "caught-up" {
  return typeof answer === "object" && answer !== null && (answer as { reload?: boolean }).reload
    ? "reload"
    : "caught-up";
}

// retry for ever, backing off to 10 s: an API restart or a network blip must not leave
// the console dead until someone reloads it
export const retryPolicy: signalR.IRetryPolicy = {
  nextRetryDelayInMilliseconds: (context) =>
    Math.min(10_000, 500 * 2 ** Math.min(context.previousRetryCount, 5)),
};

let connection: signalR.HubConnection | null = null;
let stopped = true;

export async function connect(
  token: () => string | null,
  onRevoked: (message: string) => void,
): Promise<void> {
  if (connection) return;
  stopped = false;
  const hub = new signalR.HubConnectionBuilder()
    .withUrl("/hubs/job-status", {
      accessTokenFactory: () => token() ?? "",
      transport: signalR.HttpTransportType.WebSockets,
      skipNegotiation: false,
    })
    .withAutomaticReconnect(retryPolicy)
    .configureLogging(signalR.LogLevel.None)
    .build();
  connection = hub;
  for (const target of TARGETS) hub.on(target, (...args: unknown[]) => dispatch(target, args));
  hub.onreconnecting(() => setState("reconnecting", "the connection to the hub was lost"));
  hub.onreconnected(async () => {
    setState("live");
    await resume(hub);
  });
  hub.onclose((error) => {
    const message = error?.message ?? "";
    if (stopped || connection !== hub) return;
    connection = null;
    if (/revoked|unauthori[sz]ed|401|403/i.test(message)) {
      setState("offline", message);
      onRevoked(message);
      return;
    }
    // closed for good by the client library (e.g. the server said so): start over
    setState("reconnecting", message || "the hub closed the connection");
    setTimeout(() => void connect(token, onRevoked).then(() => resume(connection)), 1000);
  });
  await startWithRetry(hub, onRevoked);
}

async function startWithRetry(
  hub: signalR.HubConnection,
  onRevoked: (message: string) => void,
): Promise<void> {
  for (let attempt = 0; !stopped && connection === hub; attempt++) {
    setState(attempt === 0 ? "connecting" : "reconnecting");
    try {
      await hub.start();
      setState("live");
      if (attempt > 0) await resume(hub);
      return;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/401|403|revoked/i.test(message)) {
        setState("offline", message);
        onRevoked(message);
        return;
      }
      await new Promise((r) =>
        setTimeout(r, retryPolicy.nextRetryDelayInMilliseconds({
          previousRetryCount: attempt,
          elapsedMilliseconds: 0,
          retryReason: new Error(message),
        }) ?? 10_000),
      );
    }
  }
}

async function resume(hub: signalR.HubConnection | null): Promise<void> {
  if (!hub) return;
  if (live.lastEventId === 0) {
    reloadAll(); // nothing to resume from: what was missed is unknown
    return;
  }
  try {
    const answer = await hub.invoke("Resume", live.lastEventId);
    if (afterResume(answer) === "reload") reloadAll();
  } catch {
    reloadAll();
  }
}

export async function disconnect(): Promise<void> {
  stopped = true;
  const hub = connection;
  connection = null;
  setState("offline");
  live.lastEventId = 0;
  if (hub) await hub.stop();
}
