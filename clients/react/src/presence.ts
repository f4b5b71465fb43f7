import { useCallback, useEffect, useMemo, useRef, useSyncExternalStore } from "react";
import type { Presence } from "@switchboard/client";
import { useSwitchboard } from "./provider.js";

const NONE: Readonly<Record<string, Presence>> = Object.freeze({});

/**
 * Presence of the given users, kept live: watched on mount (and when the list changes),
 * unwatched on unmount. Users outside the caller's presence scope are left out of the record.
 * The list may be a new array on every render: only its contents count.
 */
export function usePresence(userIds: readonly string[]): Readonly<Record<string, Presence>> {
  const sb = useSwitchboard();
  const store = sb?.store ?? null;
  const key = useMemo(() => [...new Set(userIds)].sort().join("\u0000"), [userIds]);
  const ids = useMemo(() => (key ? key.split("\u0000") : []), [key]);

  useEffect(() => {
    if (!store || ids.length === 0) return;
    store.watch(ids).catch(() => {});
    return () => void store.unwatch(ids).catch(() => {});
  }, [store, ids]);

  // A snapshot that keeps its identity while none of these users changed.
  const last = useRef<Readonly<Record<string, Presence>>>(NONE);
  const getSnapshot = useCallback(() => {
    if (!store) return NONE;
    const prev = last.current;
    let same = Object.keys(prev).length === ids.filter((u) => store.getPresence(u)).length;
    const next: Record<string, Presence> = {};
    for (const u of ids) {
      const p = store.getPresence(u);
      if (!p) continue;
      next[u] = p;
      if (prev[u] !== p) same = false;
    }
    if (same) return prev;
    last.current = Object.keys(next).length ? next : NONE;
    return last.current;
  }, [store, ids]);
  const subscribe = useCallback((fn: () => void) => (store ? store.subscribe(fn) : () => {}), [store]);
  return useSyncExternalStore(subscribe, getSnapshot, () => NONE);
}
