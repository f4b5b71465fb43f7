// Where the gateway is, and the login kept for this tab.

export { subOf } from "@switchboard/client";

/**
 * The gateway: this page's own origin, or `?gateway=http://…` for development. A link could
 * otherwise name any origin and have a pasted token sent there, so `?gateway=` is accepted
 * only when it is this page's own origin or a loopback one (localhost, 127.0.0.1, [::1]);
 * anything else is ignored.
 */
export function gatewayUrl(): string {
  const q = new URLSearchParams(location.search).get("gateway");
  const allowed = q ? allowedGateway(q, location.origin) : null;
  return (allowed ?? location.origin).replace(/\/+$/, "");
}

/** `candidate`'s origin when a page at `pageOrigin` may use it as its gateway, else null. */
export function allowedGateway(candidate: string, pageOrigin: string): string | null {
  let u: URL;
  try {
    u = new URL(candidate);
  } catch {
    return null;
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") return null;
  if (u.origin === pageOrigin) return u.origin;
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "127.0.0.1" || host === "::1" ? u.origin : null;
}

export interface Login {
  token: string;
  /** Set when the token came from the dev login: a new one can be asked for on expiry. */
  devUser: string | null;
}

const KEY = "switchboard-demo-login";

export function loadLogin(): Login | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Login) : null;
  } catch {
    return null;
  }
}

export function saveLogin(l: Login | null): void {
  try {
    if (l) sessionStorage.setItem(KEY, JSON.stringify(l));
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage off: the login lasts as long as the page
  }
}

/** `POST /api/v1/dev/token`: a token for any user, offered only while the gateway uses its
 * built-in development secret. null when the gateway does not offer it (404). */
export async function devToken(gateway: string, userId: string): Promise<string | null> {
  const r = await fetch(`${gateway}/api/v1/dev/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId }),
  });
  if (r.status === 404) return null;
  const body = await r.json().catch(() => null);
  if (!r.ok || typeof body?.token !== "string") {
    throw new Error(body?.error?.message ?? `dev login failed: HTTP ${r.status}`);
  }
  return body.token;
}

/** Whether the gateway offers the dev login: asked with an empty user id, it answers 400
 * when it does (and mints nothing), 404 when it does not. */
export async function devLoginOffered(gateway: string): Promise<boolean> {
  try {
    const r = await fetch(`${gateway}/api/v1/dev/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: '{"user_id":""}',
    });
    return r.status !== 404;
  } catch {
    return false;
  }
}
