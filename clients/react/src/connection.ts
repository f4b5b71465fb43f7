import { useEffect, useState } from "react";
import type { CloseInfo, ConnectionState } from "@switchboard/client";
import { useClient } from "./provider.js";

export interface ConnectionInfo {
  state: ConnectionState;
  lastClose: CloseInfo | null;
  userId: string | null;
}

const INITIAL: ConnectionInfo = { state: "connecting", lastClose: null, userId: null };

/** The connection's state, the last close (code and reason) and the user id (known from the
 * token, and from `hello`). */
export function useConnection(): ConnectionInfo {
  const client = useClient();
  const [info, setInfo] = useState<ConnectionInfo>(INITIAL);
  useEffect(() => {
    if (!client) {
      setInfo(INITIAL);
      return;
    }
    const sync = () =>
      setInfo((cur) => {
        const next = { state: client.state, lastClose: client.lastClose, userId: client.userId };
        return cur.state === next.state && cur.lastClose === next.lastClose && cur.userId === next.userId ? cur : next;
      });
    sync();
    const offs = [client.on("state", sync), client.on("hello", sync), client.on("close", sync)];
    return () => offs.forEach((off) => off());
  }, [client]);
  return info;
}
