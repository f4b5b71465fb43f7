//! Configuration from the environment (and `.env`), validated once at start-up. Every error
//! names the variable to fix and what to put there, in one line.

use std::net::SocketAddr;
use std::time::Duration;

mod database;
mod env;
mod jwt;
mod network;
pub use database::{DatabaseUrl, parse_database_url};
pub use env::Env;
use env::{get, parse, positive};
pub use jwt::{DEV_SECRET, JwtKey, MIN_SECRET_BYTES, decoding_key_from_pem};
pub use network::IpRange;
use network::{parse_ips, parse_origins};

mod webhooks;

pub use webhooks::{WEBHOOK_TYPES, WebhookConfig};

/// A configuration value that cannot be used, with the variable and a hint.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}; {hint}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
    pub hint: &'static str,
}

/// Everything the gateway reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BIND_ADDR`: where to listen.
    pub bind_addr: SocketAddr,
    /// `DATABASE_URL`: SQLite file or Postgres.
    pub database_url: DatabaseUrl,
    /// `REDIS_URL`: set for cross-node relay and presence.
    pub redis_url: Option<String>,
    /// `JWT_SECRET` / `JWT_PUBLIC_KEY`.
    pub jwt_key: JwtKey,
    /// `JWT_ISSUER`: required `iss` when set.
    pub jwt_issuer: Option<String>,
    /// `JWT_AUDIENCE`: required `aud` when set.
    pub jwt_audience: Option<String>,
    /// `JWT_LEEWAY_S`: clock skew forgiven on `exp`.
    pub jwt_leeway_s: u64,
    /// `SERVER_API_KEY`: the host backend's key; unset turns the server API off.
    pub server_api_key: Option<String>,
    /// `ALLOWED_ORIGINS`: origins allowed to open sockets; `None` allows any.
    pub allowed_origins: Option<Vec<String>>,
    /// `TRUSTED_PROXIES`: proxies whose `X-Forwarded-For` names the client in log lines.
    pub trusted_proxies: Vec<IpRange>,
    /// `NODE_ID`: this node's name.
    pub node_id: String,
    /// `HEARTBEAT_S`: ping interval; three silent intervals drop a socket.
    pub heartbeat: Duration,
    /// `RATE_PER_S`: sustained per-user send rate.
    pub rate_per_s: u32,
    /// `RATE_BURST`: per-user burst.
    pub rate_burst: u32,
    /// `MAX_SESSIONS_PER_USER`: sockets and streams per user.
    pub max_sessions_per_user: usize,
    /// `MAX_BODY_CHARS`: message body length in chars.
    pub max_body_chars: usize,
    /// `MAX_FRAME_BYTES`: incoming frame size; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// `OUTBOX_FRAMES`: durable frames queued per session before 4008.
    pub outbox_frames: usize,
    /// `DB_TIMEOUT_MS`: longest wait for a database connection or statement.
    pub db_timeout: Duration,
    /// `PRESENCE_SCOPE`: whose presence a user may see.
    pub presence_scope: PresenceScope,
    /// `MAX_GROUP_MEMBERS`: members of one group thread.
    pub max_group_members: usize,
    /// `OUTBOX_BYTES`: bytes queued per session (its own replies included) before 4008.
    pub outbox_bytes: usize,
    /// `RELAY_QUEUE`: events from other nodes waiting for this node before they are dropped.
    pub relay_queue: usize,
    /// `WORKERS`: threads that serve sockets and requests (actix workers).
    pub workers: usize,
    /// `SHUTDOWN_GRACE_S`: how long SIGTERM waits for sessions to close.
    pub shutdown_grace: Duration,
    /// `TYPING_TIMEOUT_MS` (not in the contract; for tests): typing auto-stop delay.
    pub typing_timeout: Duration,
    /// `METRICS_TOKEN`: bearer token for `/metrics`; `None` leaves it open.
    pub metrics_token: Option<String>,
    /// `WEBHOOK_URL` and the rest: where and what to send the host; `None` sends nothing.
    pub webhooks: Option<WebhookConfig>,
}

/// Whose presence a user may see (`PRESENCE_SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceScope {
    /// Users who share a thread or an organisation with them.
    Shared,
    /// Anyone.
    All,
}

/// Most `WORKERS`: actix refuses more (it panics past 512).
const MAX_WORKERS: usize = 512;

/// `WORKERS`, 1 to [`MAX_WORKERS`]; by default actix's own choice: the CPUs this process may
/// use (2 when that cannot be read), at most [`MAX_WORKERS`].
fn workers(env: Env) -> Result<usize, ConfigError> {
    const HINT: &str = "put a whole number of threads from 1 to 512, e.g. 2";
    let default = std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .min(MAX_WORKERS);
    let n = positive(env, "WORKERS", default, HINT)?;
    if n > MAX_WORKERS {
        return Err(ConfigError {
            var: "WORKERS",
            problem: format!("must be at most {MAX_WORKERS}"),
            hint: HINT,
        });
    }
    Ok(n)
}

impl Config {
    /// Reads the process environment (after `.env`, loaded by the caller).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads configuration through `env`, so tests need not touch the process environment.
    pub fn from_lookup(env: Env) -> Result<Config, ConfigError> {
        let bind_addr = parse(
            env,
            "BIND_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            "put host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080",
        )?;
        let database_url = parse_database_url(
            &get(env, "DATABASE_URL").unwrap_or_else(|| "sqlite://switchboard.db".into()),
        )?;
        let redis_url = match get(env, "REDIS_URL") {
            None => None,
            Some(u) if u.starts_with("rediss://") => {
                return Err(ConfigError {
                    var: "REDIS_URL",
                    problem: "TLS (rediss://) is not supported by this build".into(),
                    hint: "put redis://HOST:PORT and keep Redis on a private network",
                });
            }
            Some(u) if u.starts_with("redis://") => {
                if url::Url::parse(&u).is_err() {
                    return Err(ConfigError {
                        var: "REDIS_URL",
                        problem: "not a valid URL".into(),
                        hint: "put redis://HOST:PORT, e.g. redis://127.0.0.1:6379",
                    });
                }
                Some(u)
            }
            Some(_) => {
                return Err(ConfigError {
                    var: "REDIS_URL",
                    problem: "unknown scheme".into(),
                    hint: "put redis://HOST:PORT, e.g. redis://127.0.0.1:6379",
                });
            }
        };
        let jwt_key = jwt::key(env, bind_addr)?;
        let allowed_origins = get(env, "ALLOWED_ORIGINS")
            .map(|s| parse_origins(&s))
            .transpose()?;
        let trusted_proxies = get(env, "TRUSTED_PROXIES")
            .map(|s| parse_ips(&s))
            .transpose()?
            .unwrap_or_default();
        let node_id = get(env, "NODE_ID").unwrap_or_else(default_node_id);
        let heartbeat_s: u64 = positive(
            env,
            "HEARTBEAT_S",
            25,
            "put a whole number of seconds, e.g. 25",
        )?;
        let grace_s: u64 = parse(
            env,
            "SHUTDOWN_GRACE_S",
            10,
            "put a whole number of seconds, e.g. 10",
        )?;
        let typing_ms: u64 = positive(
            env,
            "TYPING_TIMEOUT_MS",
            5000,
            "put a number of milliseconds, e.g. 5000",
        )?;
        if typing_ms > MAX_TYPING_MS {
            return Err(ConfigError {
                var: "TYPING_TIMEOUT_MS",
                problem: format!("{typing_ms} is more than an hour"),
                hint: "put a number of milliseconds up to 3600000, e.g. 5000",
            });
        }
        Ok(Config {
            bind_addr,
            database_url,
            redis_url,
            jwt_key,
            jwt_issuer: get(env, "JWT_ISSUER"),
            jwt_audience: get(env, "JWT_AUDIENCE"),
            jwt_leeway_s: parse(
                env,
                "JWT_LEEWAY_S",
                5,
                "put a whole number of seconds, e.g. 5",
            )?,
            server_api_key: get(env, "SERVER_API_KEY"),
            allowed_origins,
            trusted_proxies,
            node_id,
            heartbeat: Duration::from_secs(heartbeat_s),
            rate_per_s: positive(env, "RATE_PER_S", 20, "put messages per second, e.g. 20")?,
            rate_burst: positive(env, "RATE_BURST", 40, "put a whole number, e.g. 40")?,
            max_sessions_per_user: positive(
                env,
                "MAX_SESSIONS_PER_USER",
                10,
                "put a whole number, e.g. 10",
            )?,
            max_body_chars: positive(
                env,
                "MAX_BODY_CHARS",
                8000,
                "put a number of chars, e.g. 8000",
            )?,
            max_frame_bytes: positive(
                env,
                "MAX_FRAME_BYTES",
                65536,
                "put a number of bytes, e.g. 65536",
            )?,
            outbox_frames: positive(
                env,
                "OUTBOX_FRAMES",
                1024,
                "put a number of frames, e.g. 1024",
            )?,
            db_timeout: Duration::from_millis(positive(
                env,
                "DB_TIMEOUT_MS",
                5000,
                "put a number of milliseconds, e.g. 5000",
            )?),
            presence_scope: match get(env, "PRESENCE_SCOPE").as_deref() {
                None | Some("shared") => PresenceScope::Shared,
                Some("all") => PresenceScope::All,
                Some(other) => {
                    return Err(ConfigError {
                        var: "PRESENCE_SCOPE",
                        problem: format!("cannot use {other:?}"),
                        hint: "put shared (the default) or all",
                    });
                }
            },
            max_group_members: positive(
                env,
                "MAX_GROUP_MEMBERS",
                1000,
                "put a whole number, e.g. 1000",
            )?,
            outbox_bytes: positive(
                env,
                "OUTBOX_BYTES",
                4_194_304,
                "put a number of bytes, e.g. 4194304",
            )?,
            relay_queue: positive(
                env,
                "RELAY_QUEUE",
                16_384,
                "put a whole number of events, e.g. 16384",
            )?,
            workers: workers(env)?,
            shutdown_grace: Duration::from_secs(grace_s),
            typing_timeout: Duration::from_millis(typing_ms),
            metrics_token: get(env, "METRICS_TOKEN"),
            webhooks: webhooks::from_env(env)?,
        })
    }

    /// Whether tokens are checked against the built-in development secret.
    pub fn uses_dev_secret(&self) -> bool {
        matches!(self.jwt_key, JwtKey::Secret { is_dev: true, .. })
    }
}

/// The longest typing auto-stop: a deadline must stay a representable instant.
const MAX_TYPING_MS: u64 = 3_600_000;

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_contract_defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.database_url,
            DatabaseUrl::Sqlite(PathBuf::from("switchboard.db"))
        );
        assert!(c.uses_dev_secret());
        assert_eq!(c.heartbeat, Duration::from_secs(25));
        assert_eq!((c.rate_per_s, c.rate_burst), (20, 40));
        assert_eq!(c.max_sessions_per_user, 10);
        assert_eq!((c.max_body_chars, c.max_frame_bytes), (8000, 65536));
        assert_eq!((c.outbox_frames, c.outbox_bytes), (1024, 4_194_304));
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.db_timeout, Duration::from_millis(5000));
        assert_eq!(c.max_group_members, 1000);
        assert_eq!(c.presence_scope, PresenceScope::Shared);
        assert_eq!(c.jwt_leeway_s, 5);
        assert!(c.redis_url.is_none());
        assert!(c.server_api_key.is_none());
        assert!(c.allowed_origins.is_none());
        assert!(c.metrics_token.is_none());
        assert!(c.webhooks.is_none());
        let secret = "w".repeat(32);
        let hooks = cfg(&[
            ("WEBHOOK_URL", "http://127.0.0.1:9/h"),
            ("WEBHOOK_SECRET", &secret),
        ])
        .unwrap()
        .webhooks
        .unwrap();
        assert_eq!(hooks.max_age, Duration::from_secs(86400));
        assert_eq!(hooks.events.len(), 6, "all event types");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, val) in [
            ("BIND_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_URL", "postgres://"),
            ("JWT_PUBLIC_KEY", "/nonexistent.pem"),
            ("HEARTBEAT_S", "0"),
            ("RATE_PER_S", "fast"),
            ("REDIS_URL", "127.0.0.1:6379"),
            ("REDIS_URL", "rediss://127.0.0.1:6379"),
        ] {
            let err = cfg(&[(var, val)]).unwrap_err();
            assert_eq!(err.var, var, "{val}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn origins_and_proxies_are_checked_at_start() {
        let origins = |v: &str| cfg(&[("ALLOWED_ORIGINS", v)]).map(|c| c.allowed_origins);
        assert_eq!(
            origins("https://app.example.com/, http://localhost:3000").unwrap(),
            Some(vec![
                "https://app.example.com".to_string(),
                "http://localhost:3000".to_string()
            ])
        );
        assert!(origins("*").is_ok());
        for bad in [
            "not-a-url",
            "app.example.com",
            "https://x.com/path",
            "ftp://x.com",
        ] {
            assert_eq!(origins(bad).unwrap_err().var, "ALLOWED_ORIGINS", "{bad}");
        }
        // As browsers send them: lowercase, no default port.
        assert_eq!(
            origins("https://App.Example.com:443,http://x.com:8080").unwrap(),
            Some(vec![
                "https://app.example.com".to_string(),
                "http://x.com:8080".to_string()
            ])
        );
        let proxies = cfg(&[("TRUSTED_PROXIES", "127.0.0.1, ::1, 172.18.0.0/16")]).unwrap();
        let trusted = |ip: &str| {
            let ip = ip.parse().unwrap();
            proxies.trusted_proxies.iter().any(|r| r.contains(ip))
        };
        assert!(trusted("127.0.0.1") && trusted("::1") && trusted("::ffff:127.0.0.1"));
        assert!(trusted("172.18.5.9") && !trusted("172.19.0.1") && !trusted("127.0.0.2"));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x"] {
            assert_eq!(
                cfg(&[("TRUSTED_PROXIES", bad)]).unwrap_err().var,
                "TRUSTED_PROXIES"
            );
        }
        assert!(cfg(&[("TRUSTED_PROXIES", "0.0.0.0/0")]).is_ok());
    }

    #[test]
    fn secrets_are_long_and_the_dev_secret_stays_on_loopback() {
        assert_eq!(
            cfg(&[("JWT_SECRET", "short")]).unwrap_err().var,
            "JWT_SECRET"
        );
        assert!(cfg(&[("JWT_SECRET", &"x".repeat(32))]).is_ok());
        // Bytes, not characters: 31 bytes is one short, even as 11 three-byte characters.
        assert_eq!(
            cfg(&[("JWT_SECRET", &"x".repeat(31))]).unwrap_err().var,
            "JWT_SECRET"
        );
        assert!(cfg(&[("JWT_SECRET", &"€".repeat(11))]).is_ok());
        let public = cfg(&[("BIND_ADDR", "0.0.0.0:8080")]).unwrap_err();
        assert_eq!(public.var, "JWT_SECRET");
        assert!(
            cfg(&[("BIND_ADDR", "127.0.0.1:9000")])
                .unwrap()
                .uses_dev_secret()
        );
        assert!(cfg(&[("BIND_ADDR", "[::1]:9000")]).is_ok());
        // The built-in secret set by hand is still the public one.
        let by_hand = cfg(&[("BIND_ADDR", "0.0.0.0:8080"), ("JWT_SECRET", DEV_SECRET)]);
        assert_eq!(by_hand.unwrap_err().var, "JWT_SECRET");
        assert!(
            cfg(&[("JWT_SECRET", DEV_SECRET)])
                .unwrap()
                .uses_dev_secret()
        );
        assert!(
            cfg(&[
                ("BIND_ADDR", "0.0.0.0:8080"),
                ("JWT_SECRET", &"y".repeat(40))
            ])
            .is_ok()
        );
    }

    #[test]
    fn postgres_url_is_accepted() {
        let c = cfg(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x")]).unwrap();
        assert!(matches!(c.database_url, DatabaseUrl::Postgres(_)));
    }
}
