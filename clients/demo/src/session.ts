// Where the gateway is, and the login kept for this tab.

/** The gateway: this page's own origin, or `?gateway=http://…` for development. */
export function gatewayUrl(): string {
  const q = new URLSearchParams(location.search).get("gateway");
  return (q || location.origin).replace(/\/+$/, "");
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

/** The token's `sub`, unverified (the gateway verifies): who is signed in, for display. */
export function subOf(token: string): string | null {
  try {
    const part = token.split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const sub = JSON.parse(new TextDecoder().decode(bytes)).sub;
    return typeof sub === "string" ? sub : null;
  } catch {
    return null;
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
