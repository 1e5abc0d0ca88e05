// Who is signed in (GET /api/admin/me), what they may do, and the tenant every page is
// scoped by.

import { reactive } from "vue";
import { ApiError, request, tokenStore } from "./api";

export type Role = "viewer" | "operator" | "admin" | "probe";
export interface Caller {
  tokenId: string;
  name: string;
  role: Role;
  tenants: string[] | null; // null: every tenant
}

const RANK: Record<Role, number> = { probe: -1, viewer: 0, operator: 1, admin: 2 };

export const session = reactive({
  caller: null as Caller | null,
  tenant: "", // "": every tenant the token sees
  seenTenants: [] as string[], // tenants met in data, for a token that sees every tenant
  message: "", // why the last session ended, shown on the sign-in page
});

export function allows(caller: Caller | null, role: Role): boolean {
  return caller !== null && RANK[caller.role] >= RANK[role];
}

export const can = (role: Role): boolean => allows(session.caller, role);

/** The tenants the switcher offers. */
export function tenantChoices(caller: Caller | null, seen: string[]): string[] {
  if (!caller) return [];
  return [...new Set(caller.tenants ?? seen)].sort();
}

export function noteTenants(tenants: Iterable<string>): void {
  const known = new Set(session.seenTenants);
  let added = false;
  for (const t of tenants) {
    if (!known.has(t)) {
      known.add(t);
      added = true;
    }
  }
  if (added) session.seenTenants = [...known].sort();
}

/** The ``tenant`` query parameter of every list, from the switcher. */
export function tenantQuery(): { tenant?: string } {
  return session.tenant ? { tenant: session.tenant } : {};
}

export async function signIn(token: string): Promise<Caller> {
  const caller = await request<Caller>("GET", "/api/admin/me", { token });
  tokenStore.set(token);
  session.caller = caller;
  session.message = "";
  session.tenant = caller.tenants?.length === 1 ? caller.tenants[0] : "";
  return caller;
}

/** The session of this tab, if its token is still good. */
export async function restore(): Promise<Caller | null> {
  if (session.caller) return session.caller;
  const token = tokenStore.get();
  if (!token) return null;
  try {
    return await signIn(token);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      endSession(error.explanation);
      return null;
    }
    throw error;
  }
}

export function endSession(message = ""): void {
  tokenStore.clear();
  session.caller = null;
  session.tenant = "";
  session.seenTenants = [];
  session.message = message;
}
