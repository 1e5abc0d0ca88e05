// The admin API from the browser: same origin, bearer token from the session, RFC 9457
// problem details turned into one error type the pages show as what it means.

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(status: number, problem: Problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }

  /** What a person reads: what the status means here, then the API's own words. */
  get explanation(): string {
    const detail = this.problem.detail || this.problem.title || "";
    switch (this.status) {
      case 401:
        return "Your session ended: the token was revoked or has expired. Sign in again.";
      case 403:
        return `Your token's role may not do this. ${detail}`.trim();
      case 404:
        return `Not found, or not in your tenants. ${detail}`.trim();
      case 409:
        return `Not possible in the current state. ${detail}`.trim();
      case 422:
        return `The request was not accepted: ${detail}`;
      default:
        return this.status >= 500
          ? `The API failed (${this.status}); try again, and look at the API's log if it persists.`
          : detail || `HTTP ${this.status}`;
    }
  }
}

/** The network failed before an answer (API restarting, offline). */
export class Unreachable extends Error {
  constructor(cause: unknown) {
    super(`The admin API cannot be reached (${String(cause)}). It may be restarting.`);
    this.name = "Unreachable";
  }
}

const TOKEN_KEY = "b2c.token";
// the tab's session only: closing the tab forgets it, and it never goes into a URL
export const tokenStore = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (token: string): void => sessionStorage.setItem(TOKEN_KEY, token),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

type Listener = (error: ApiError) => void;
const unauthenticated: Listener[] = [];
/** Called on any 401: the session is over. */
export function onUnauthenticated(listener: Listener): void {
  unauthenticated.push(listener);
}

export type Query = Record<string, string | number | boolean | string[] | null | undefined>;

export function queryString(query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

export async function request<T>(
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; token?: string; raw?: boolean } = {},
): Promise<T> {
  const token = options.token ?? tokenStore.get();
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path + queryString(options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (error) {
    throw new Unreachable(error);
  }
  if (!response.ok) {
    let problem: Problem = { status: response.status };
    try {
      problem = (await response.json()) as Problem;
    } catch {
      // not a problem document (a proxy's page): the status says enough
    }
    const error = new ApiError(response.status, problem);
    if (response.status === 401 && !options.token) unauthenticated.forEach((l) => l(error));
    throw error;
  }
  if (options.raw) return (await response.blob()) as T;
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export const api = {
  get: <T>(path: string, query?: Query) => request<T>("GET", path, { query }),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, { body }),
  put: <T>(path: string, body?: unknown) => request<T>("PUT", path, { body }),
  delete: <T>(path: string) => request<T>("DELETE", path),
};

/** Download a file the API makes (the token must not go in a link, so fetch and save). */
export async function download(path: string, query: Query, filename: string): Promise<void> {
  const blob = await request<Blob>("GET", path, { query, raw: true });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function describe(error: unknown): string {
  if (error instanceof ApiError) return error.explanation;
  if (error instanceof Error) return error.message;
  return String(error);
}
