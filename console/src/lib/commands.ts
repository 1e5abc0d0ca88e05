// A job's retry and cancel commands as the job page tells them: the outcome's tone, what
// the operator can do next and a result in words (pure functions, tested in commands.test.ts).

export type CommandResult = Record<string, string | number | boolean | null>;

export interface Command {
  id: string;
  kind: string;
  state: string;
  requestedBy: string;
  requestedAt: string;
  doneAt: string | null;
  claimedBy: string | null;
  result: CommandResult | null;
}

// the outcome's colour: an expiry did nothing (a warning), a failure is the runner's "no"
export function outcomeTone(state: string): "info" | "warn" | "bad" {
  return state === "expired" ? "warn" : state === "failed" ? "bad" : "info";
}

// an expired command reached nobody: nothing happened to the job, and asking again only
// helps once something of its service takes commands (a viewer cannot ask)
export function nextStep(command: Command, service: string | null, canAct: boolean): string | null {
  if (command.state !== "expired") return null;
  const runner = service ? `${service}'s job runner` : "the job's runner";
  const who = canAct ? "" : "an operator can ";
  return `Nothing was done to the job. Once ${runner} is running, ${who}${command.kind} it again.`;
}

export function resultText(result: CommandResult | null): string {
  if (!result) return "";
  if (typeof result.error === "string") return result.error;
  if (result.newJobId != null) return `new attempt ${String(result.newJobId)}`;
  return Object.entries(result)
    .map(([k, v]) => `${k}: ${String(v)}`)
    .join(", ");
}
