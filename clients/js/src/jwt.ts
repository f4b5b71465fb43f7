/** A JWT's payload, without verifying it (the gateway does). null when it is not a JWT. */
export function claimsOf(token: string): Record<string, unknown> | null {
  try {
    const part = token.split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** The `sub` of a JWT, unverified: only a namespace (the tab group, the outbox's database) or
 * a name to show, known before the first hello. null when missing or empty. */
export function subOf(token: string): string | null {
  const sub = claimsOf(token)?.sub;
  return typeof sub === "string" && sub !== "" ? sub : null;
}
