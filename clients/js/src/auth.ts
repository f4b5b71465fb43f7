import { SwitchboardError } from "./errors.js";
import { subOf } from "./jwt.js";
import { apiUrl } from "./transport.js";
import type { TokenReason } from "./types.js";
import { withTimeout } from "./util.js";

/**
 * The current token and REST calls made with it: one getToken() at a time however many
 * callers need a new token, and one refresh-and-retry on a REST 401.
 */
export class Auth {
  token: string | null = null;
  private refreshing: Promise<string> | null = null;

  constructor(
    private readonly url: string,
    private readonly getToken: (reason: TokenReason) => Promise<string> | string,
    private readonly fetchFn: typeof fetch | undefined,
    private readonly timeoutMs: number,
    /** Each new token's `sub` (the outbox is keyed by the user). */
    private readonly onToken: (sub: string | null) => void,
  ) {}

  get canFetch(): boolean {
    return !!this.fetchFn;
  }

  async current(): Promise<string> {
    if (this.token) return this.token;
    return this.refresh("initial");
  }

  /** A new token from the app; concurrent callers share one getToken() call. */
  refresh(reason: TokenReason): Promise<string> {
    if (!this.refreshing) {
      this.refreshing = Promise.resolve(this.getToken(reason)).then(
        (t) => {
          this.refreshing = null;
          this.token = t;
          this.onToken(subOf(t));
          return t;
        },
        (e) => {
          this.refreshing = null;
          throw e;
        },
      );
    }
    return this.refreshing;
  }

  /** REST under /api/v1 with the current token; one refresh and retry on 401. */
  async rest(method: string, path: string, body?: unknown): Promise<unknown> {
    let token = await this.current();
    for (let attempt = 0; ; attempt++) {
      const res = await this.fetchRaw(method, path, token, body, this.timeoutMs);
      if (res.status === 401 && attempt === 0) {
        token = await this.refresh("expired");
        continue;
      }
      const text = await res.text();
      const json = text ? safeJson(text) : undefined;
      if (!res.ok) {
        const err = (json as { error?: { code?: string; message?: string; retry_after_ms?: number } })?.error;
        throw new SwitchboardError((err?.code as never) ?? statusCode(res.status), err?.message ?? `HTTP ${res.status}`, {
          status: res.status,
          retryAfterMs: err?.retry_after_ms,
        });
      }
      return json;
    }
  }

  /**
   * Why did a WebSocket fail before hello (a browser hides the HTTP status)? Asks
   * `GET /api/v1/unread` with the token that was used: "refused" (401: the token), "ok" (the
   * gateway answers and takes the token: something eats the upgrade, or the node was
   * restarting), "down" (no answer), or "unknown" (no fetch to ask with).
   */
  async probe(): Promise<"refused" | "ok" | "down" | "unknown"> {
    if (!this.fetchFn || !this.token) return "unknown";
    try {
      const res = await this.fetchRaw("GET", "/unread", this.token, undefined, Math.min(this.timeoutMs, 5000));
      void res.text().catch(() => {});
      if (res.status === 401) return "refused";
      return res.ok ? "ok" : "down";
    } catch {
      return "down";
    }
  }

  /** GET /healthz: does the gateway answer plain HTTP? */
  async healthy(): Promise<boolean> {
    if (!this.fetchFn) return false;
    try {
      const r = await withTimeout(this.fetchFn(this.url.replace(/\/+$/, "") + "/healthz"), 3000);
      return r.ok;
    } catch {
      return false;
    }
  }

  private async fetchRaw(method: string, path: string, token: string, body: unknown, timeoutMs: number): Promise<Response> {
    if (!this.fetchFn) throw new SwitchboardError("internal", "no fetch available");
    const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      return await withTimeout(
        this.fetchFn(apiUrl(this.url, path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }),
        timeoutMs,
      );
    } catch (e) {
      throw e instanceof SwitchboardError ? e : new SwitchboardError("unavailable", "request failed: " + (e instanceof Error ? e.message : String(e)));
    }
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function statusCode(status: number) {
  const m: Record<number, string> = { 400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict", 413: "too_large", 429: "rate_limited", 503: "unavailable" };
  return (m[status] ?? "internal") as never;
}
