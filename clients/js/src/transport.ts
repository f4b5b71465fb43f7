import type { AckFrame, EventFrame, HelloFrame, PongFrame, Request } from "./frames.js";
import type { SwitchboardError } from "./errors.js";

/** What a transport reports to the connection core. */
export interface TransportHandlers {
  onHello(h: HelloFrame): void;
  onEvent(f: EventFrame): void;
  /** An `error` frame that matches no pending request (e.g. a failed ref-less typing). */
  onError(e: SwitchboardError): void;
  /** Called once. `sawHello` tells a refused connection (the browser hides the 401) from a
   * dropped one. */
  onClose(code: number, reason: string, sawHello: boolean): void;
}

/** One connection attempt: a WebSocket, or an SSE stream with REST for the actions. */
export interface Transport {
  /** Resolves with the reply (`ack` fields or `pong`), rejects with a SwitchboardError. */
  request(req: Request, timeoutMs: number): Promise<AckFrame | PongFrame>;
  /** Fire and forget (ref-less typing): failures surface as onError. */
  notify(req: Request): void;
  /** Ends the connection; onClose follows with this code. */
  close(code: number, reason: string): void;
}

/** ws(s)://host/ws from the gateway's http(s) base URL. */
export function wsUrl(base: string, token: string): string {
  const u = new URL(base.replace(/\/+$/, "") + "/ws");
  u.protocol = u.protocol === "https:" ? "wss:" : u.protocol === "http:" ? "ws:" : u.protocol;
  u.searchParams.set("token", token);
  return u.toString();
}

export function apiUrl(base: string, path: string): string {
  return base.replace(/\/+$/, "") + "/api/v1" + (path.startsWith("/") ? path : "/" + path);
}
