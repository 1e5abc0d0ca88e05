import { describe, expect, it } from "vitest";
import { nextStep, outcomeTone, resultText, type Command } from "./commands";

function command(patch: Partial<Command> = {}): Command {
  return {
    id: "c1",
    kind: "retry",
    state: "pending",
    requestedBy: "ops",
    requestedAt: "2026-12-07T20:00:00Z",
    doneAt: null,
    claimedBy: null,
    result: null,
    ...patch,
  };
}

describe("a job's commands", () => {
  it("say what to do next only when the command expired", () => {
    expect(nextStep(command({ state: "expired" }), "erp-connector", true)).toBe(
      "Nothing was done to the job. Once erp-connector's job runner is running, retry it again.",
    );
    expect(nextStep(command({ state: "expired", kind: "cancel" }), null, false)).toBe(
      "Nothing was done to the job. Once the job's runner is running, an operator can cancel it again.",
    );
    for (const state of ["pending", "claimed", "done", "failed"]) {
      expect(nextStep(command({ state }), "erp-connector", true)).toBeNull();
    }
  });

  it("colour an expiry as a warning and a refusal as bad", () => {
    expect(outcomeTone("expired")).toBe("warn");
    expect(outcomeTone("failed")).toBe("bad");
    expect(outcomeTone("pending")).toBe("info");
    expect(outcomeTone("done")).toBe("info");
  });

  it("tell a result in words, not JSON", () => {
    expect(resultText(null)).toBe("");
    expect(resultText({ error: "no job runner of gone took it within 60 s" })).toBe(
      "no job runner of gone took it within 60 s",
    );
    expect(resultText({ ok: true, newJobId: "j2" })).toBe("new attempt j2");
    expect(resultText({ ok: true })).toBe("ok: true");
  });
});
