import { describe, expect, it } from "vitest";
import { allows, tenantChoices, type Caller } from "./session";

const caller = (role: Caller["role"], tenants: string[] | null): Caller => ({ tokenId: "t", name: "n", role, tenants });

describe("roles", () => {
  it("an operator may do what a viewer may, not what an admin may", () => {
    expect(allows(caller("operator", ["a"]), "viewer")).toBe(true);
    expect(allows(caller("operator", ["a"]), "operator")).toBe(true);
    expect(allows(caller("operator", ["a"]), "admin")).toBe(false);
    expect(allows(caller("viewer", ["a"]), "operator")).toBe(false);
    expect(allows(caller("probe", ["a"]), "viewer")).toBe(false);
    expect(allows(null, "viewer")).toBe(false);
  });
});

describe("the tenant switcher", () => {
  it("offers the token's tenants, or those seen in data for a token of every tenant", () => {
    expect(tenantChoices(caller("viewer", ["b", "a"]), ["zzz"])).toEqual(["a", "b"]);
    expect(tenantChoices(caller("admin", null), ["globex", "acme", "acme"])).toEqual(["acme", "globex"]);
    expect(tenantChoices(null, ["x"])).toEqual([]);
  });
});
