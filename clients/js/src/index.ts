export { connect } from "./client.js";
export { SwitchboardError } from "./errors.js";
export { Close } from "./frames.js";
export type * from "./frames.js";
export type * from "./types.js";
export type { OutboxEntry } from "./storage.js";
export { TYPING_REPEAT_MS, TYPING_IDLE_MS } from "./typing.js";
