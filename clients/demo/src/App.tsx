import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import { SwitchboardProvider } from "@switchboard/react";
import type { TokenReason } from "@switchboard/client";
import { Chat } from "./Chat.js";
import { devLoginOffered, devToken, gatewayUrl, loadLogin, saveLogin, subOf, type Login } from "./session.js";

export function App() {
  const gateway = useMemo(gatewayUrl, []);
  const [login, setLogin] = useState<Login | null>(loadLogin);
  const [notice, setNotice] = useState<string | null>(null);

  const signIn = useCallback((l: Login | null) => {
    saveLogin(l);
    setLogin(l);
    if (l) setNotice(null);
  }, []);

  // The client stops after the gateway refused the token several times in a row: back to the
  // sign-in form, saying why.
  const refused = useCallback(() => {
    signIn(null);
    setNotice("The gateway refused the token (expired or invalid): sign in again.");
  }, [signIn]);

  // A pasted token cannot be renewed; a dev login asks for a new one when it expires.
  const getToken = useCallback(
    async (reason: TokenReason) => {
      if (!login) throw new Error("signed out");
      if (reason !== "initial" && login.devUser) {
        const t = await devToken(gateway, login.devUser);
        if (t) {
          saveLogin({ token: t, devUser: login.devUser });
          return t;
        }
      }
      return login.token;
    },
    [gateway, login],
  );

  if (!login) return <LoginForm gateway={gateway} onLogin={signIn} notice={notice} />;
  const me = subOf(login.token) ?? "?";
  return (
    // Tabs of one user share a connection; the client keys the sharing by the token's user,
    // so two users in two tabs of one browser each get their own.
    <SwitchboardProvider key={login.token} url={gateway} getToken={getToken}>
      <Chat me={me} gateway={gateway} onLogout={() => signIn(null)} onRefused={refused} />
    </SwitchboardProvider>
  );
}

function LoginForm({ gateway, onLogin, notice }: { gateway: string; onLogin: (l: Login) => void; notice: string | null }) {
  const [token, setToken] = useState("");
  const [devUser, setDevUser] = useState("");
  const [devOffered, setDevOffered] = useState<boolean | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let alive = true;
    devLoginOffered(gateway).then((ok) => alive && setDevOffered(ok));
    return () => {
      alive = false;
    };
  }, [gateway]);

  const submitToken = (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    if (!subOf(t)) {
      setError("That does not look like a token (a JWT: three parts separated by dots).");
      return;
    }
    onLogin({ token: t, devUser: null });
  };

  const dev = async (e: FormEvent) => {
    e.preventDefault();
    const u = devUser.trim();
    if (!u) return;
    setError(null);
    try {
      const t = await devToken(gateway, u);
      if (t === null) {
        setDevOffered(false);
        setError("This gateway does not offer the dev login: paste a token.");
        return;
      }
      onLogin({ token: t, devUser: u });
    } catch (err) {
      setError(String((err as Error).message ?? err));
    }
  };

  return (
    <div className="login" data-testid="login">
      <h1>Switchboard demo chat</h1>
      <p className="muted">
        Gateway: <code data-testid="gateway-url">{gateway}</code>
      </p>
      {notice && (
        <p className="error" data-testid="login-notice">
          {notice}
        </p>
      )}
      <form onSubmit={submitToken} className="card">
        <label htmlFor="token">Token</label>
        <p className="muted small">
          Paste the output of <code>switchboard token alice</code>.
        </p>
        <textarea
          id="token"
          data-testid="token-input"
          rows={4}
          value={token}
          onChange={(e) => setToken(e.target.value)}
          placeholder="eyJhbGciOi…"
          spellCheck={false}
        />
        <button type="submit" data-testid="token-connect">
          Connect
        </button>
      </form>
      {devOffered && (
        <form onSubmit={dev} className="card" data-testid="dev-login-form">
          <label htmlFor="dev-user">Dev login</label>
          <p className="muted small">Only while the gateway runs with its built-in development secret.</p>
          <div className="row">
            <input
              id="dev-user"
              data-testid="dev-user"
              value={devUser}
              onChange={(e) => setDevUser(e.target.value)}
              placeholder="user id, e.g. alice"
              autoComplete="off"
            />
            <button type="submit" data-testid="dev-login">
              Log in
            </button>
          </div>
        </form>
      )}
      {error && (
        <p className="error" data-testid="login-error">
          {error}
        </p>
      )}
    </div>
  );
}
