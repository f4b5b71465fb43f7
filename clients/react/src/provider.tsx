import { createContext, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { connect, type Client, type ConnectOptions, type TokenReason } from "@switchboard/client";
import { Store } from "./store.js";

export interface SwitchboardContextValue {
  client: Client;
  store: Store;
}

const Ctx = createContext<SwitchboardContextValue | null>(null);

export type ProviderOptions = Omit<ConnectOptions, "url" | "getToken">;

export type SwitchboardProviderProps =
  | {
      /** Gateway base URL, e.g. "http://127.0.0.1:8080". */
      url: string;
      /** Called with the latest props each time (no stale closure): "initial", "expired" or "refused". */
      getToken: (reason: TokenReason) => Promise<string> | string;
      /** Read when the client is created (a change of `url` creates a new client; a change of
       * `options` alone does not). */
      options?: ProviderOptions;
      client?: undefined;
      children?: ReactNode;
    }
  | {
      /** An existing client: the provider uses it and does not close it. */
      client: Client;
      url?: undefined;
      getToken?: undefined;
      options?: undefined;
      children?: ReactNode;
    };

/**
 * Creates one client (or uses the given one) for the hooks below it, and closes the client it
 * created when it unmounts or its `url` changes. The client is created in an effect, so the
 * hooks see no client during the very first render (they report "connecting" and empty data).
 */
export function SwitchboardProvider(props: SwitchboardProviderProps) {
  const getTokenRef = useRef(props.getToken);
  getTokenRef.current = props.getToken;
  const optionsRef = useRef(props.options);
  optionsRef.current = props.options;
  const [value, setValue] = useState<SwitchboardContextValue | null>(null);
  const given = props.client;
  const url = props.url;

  useEffect(() => {
    let client: Client;
    if (given) client = given;
    else {
      if (!url) throw new Error("SwitchboardProvider needs `url` and `getToken`, or `client`");
      client = connect({
        ...optionsRef.current,
        url,
        getToken: (reason) => {
          const f = getTokenRef.current;
          if (!f) throw new Error("SwitchboardProvider: no getToken");
          return f(reason);
        },
      });
    }
    const store = new Store(client);
    setValue({ client, store });
    return () => {
      store.dispose();
      if (!given) client.close();
      setValue(null);
    };
  }, [given, url]);

  return <Ctx.Provider value={value}>{props.children}</Ctx.Provider>;
}

/** The provider's client and store, or null before the client exists (or outside a provider). */
export function useSwitchboard(): SwitchboardContextValue | null {
  return useContext(Ctx);
}

/** The provider's client, or null before it exists. */
export function useClient(): Client | null {
  return useContext(Ctx)?.client ?? null;
}
