import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, onUnauthenticated, queryString, request, tokenStore, Unreachable } from "./api";

function answer(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/problem+json" } });
}

describe("queryString", () => {
  it("repeats lists and leaves out what is empty", () => {
    expect(queryString({ status: ["failed", "cancelled"], q: "", tenant: undefined, limit: 50 })).toBe(
      "?status=failed&status=cancelled&limit=50",
    );
    expect(queryString({})).toBe("");
  });
});

describe("request", () => {
  beforeEach(() => sessionStorage.clear());
  afterEach(() => vi.unstubAllGlobals());

  it("sends the session's token as a bearer header, never in the URL", async () => {
    tokenStore.set("s3cret");
    const fetch = vi.fn(async () => new Response(JSON.stringify({ ok: 1 }), { status: 200 }));
    vi.stubGlobal("fetch", fetch);
    expect(await request("GET", "/api/admin/jobs", { query: { limit: 5 } })).toEqual({ ok: 1 });
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/admin/jobs?limit=5");
    expect(url).not.toContain("s3cret");
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer s3cret");
  });

  it("turns a problem document into an ApiError that says what it means", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => answer(403, { title: "Forbidden", detail: "this action needs the operator role" })));
    const error = await request("POST", "/api/admin/jobs/x/retry").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(403);
    expect((error as ApiError).explanation).toBe("Your token's role may not do this. this action needs the operator role");
  });

  it("ends the session on a 401, but not when a sign-in tries a token", async () => {
    const ended = vi.fn();
    onUnauthenticated(ended);
    vi.stubGlobal("fetch", vi.fn(async () => answer(401, { detail: "the token was revoked" })));
    await expect(request("GET", "/api/admin/me", { token: "candidate" })).rejects.toBeInstanceOf(ApiError);
    expect(ended).not.toHaveBeenCalled();
    await expect(request("GET", "/api/admin/jobs")).rejects.toBeInstanceOf(ApiError);
    expect(ended).toHaveBeenCalledTimes(1);
  });

  it("says the API is unreachable when the network fails", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("Failed to fetch"))));
    await expect(request("GET", "/api/admin/jobs")).rejects.toBeInstanceOf(Unreachable);
  });
});
