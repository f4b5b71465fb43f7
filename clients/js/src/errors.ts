import type { ErrorCode } from "./frames.js";

/** Removes credentials from text the client reports: `token=…` query parameters, bearer
 * headers and anything shaped like a JWT. */
export function redact(s: string): string {
  return s
    .replace(/([?&]?token=)[^&\s"'#]+/gi, "$1[redacted]")
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, "$1[redacted]")
    .replace(/eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, "[redacted]");
}

/** Every failure the client reports: `code` is the contract's error code, or "timeout" /
 * "closed" for failures the client detects itself. Branch on `code`, not `message`. */
export class SwitchboardError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterMs?: number;
  /** HTTP status, for errors that came from a REST call. */
  readonly status?: number;

  constructor(code: ErrorCode, message: string, extra: { retryAfterMs?: number; status?: number } = {}) {
    // Never a credential in a message: a WebSocket constructor's error names the URL, with
    // the token in its query.
    super(redact(message));
    this.name = "SwitchboardError";
    this.code = code;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
    if (extra.status !== undefined) this.status = extra.status;
  }

  /** Plain form, for BroadcastChannel (structured clone drops an Error's own fields). */
  toJSON(): { code: ErrorCode; message: string; retryAfterMs?: number; status?: number } {
    return { code: this.code, message: this.message, retryAfterMs: this.retryAfterMs, status: this.status };
  }

  static from(x: unknown): SwitchboardError {
    if (x instanceof SwitchboardError) return x;
    if (x && typeof x === "object" && "code" in x) {
      const o = x as { code: ErrorCode; message?: string; retryAfterMs?: number; status?: number };
      return new SwitchboardError(o.code, o.message ?? o.code, { retryAfterMs: o.retryAfterMs, status: o.status });
    }
    return new SwitchboardError("internal", x instanceof Error ? x.message : String(x));
  }
}

/** Errors that no retry can fix: the send is dropped from the outbox and rejected. */
export function isPermanent(code: ErrorCode): boolean {
  return code === "bad_request" || code === "forbidden" || code === "not_found" || code === "too_large" ||
    code === "unauthorized" || code === "conflict" || code === "internal" || code === "closed";
}
