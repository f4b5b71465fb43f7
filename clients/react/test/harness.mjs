// A DOM for react-dom (jsdom), a way to render hooks and read their latest result, and polling.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>", { url: "http://localhost/" });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
if (!("navigator" in globalThis)) globalThis.navigator = dom.window.navigator;
globalThis.HTMLElement = dom.window.HTMLElement;
globalThis.Node = dom.window.Node;

const React = await import("react");
const { createRoot } = await import("react-dom/client");
export { React };

/**
 * Renders `hook(props)` inside `wrap(children)`; `result.current` is the latest return value,
 * `result.all` every value returned (one per render).
 */
export function renderHook(hook, { wrap = (c) => c, props } = {}) {
  const result = { current: undefined, all: [], renders: 0 };
  function Probe({ p }) {
    const v = hook(p);
    result.current = v;
    result.all.push(v);
    result.renders++;
    return null;
  }
  const el = document.createElement("div");
  document.body.appendChild(el);
  const root = createRoot(el);
  const draw = (p) => root.render(wrap(React.createElement(Probe, { p })));
  draw(props);
  return {
    result,
    rerender: (p) => draw(p),
    unmount: () => {
      root.unmount();
      el.remove();
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (returned) or throws the last failure. */
export async function waitFor(fn, { timeout = 10_000, interval = 20, what = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = new Error(`${what}: not yet (${JSON.stringify(v)})`);
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${last?.message}`);
    await sleep(interval);
  }
}
