//! The command line: `serve` (default), `migrate`, `check`, `token`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::auth::{Auth, Claims};
use crate::config::Config;
use crate::store::{Store, migrate};

/// Switchboard: a real-time chat gateway. Configured by environment (and .env).
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// A subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default); applies migrations first.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check that the database (and Redis, when configured) is reachable and migrated.
    Check,
    /// Print a token for a user, signed with JWT_SECRET (for websocat and curl).
    Token {
        /// The user id (`sub`).
        user_id: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// An organisation the user belongs to (repeatable).
        #[arg(long = "org")]
        orgs: Vec<String>,
    },
}

/// Crates of this binary that log, for telling a module filter in `RUST_LOG` from a typo.
const LOGGING_CRATES: &[&str] = &[
    "switchboard",
    "actix",
    "actix_web",
    "actix_http",
    "actix_server",
    "actix_ws",
    "diesel",
    "diesel_async",
    "diesel_migrations",
    "tokio_postgres",
    "deadpool",
    "deadpool_redis",
    "redis",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "mio",
    "tokio",
    "jsonwebtoken",
    "metrics_exporter_prometheus",
    "env_logger",
];
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// The log filter to use: `RUST_LOG`'s directives that name a level or a module of this
/// binary (or `info` when none does), and a warning naming the ones left out. env_logger
/// reads a typo such as `inof` as a module name and then shows nothing at all, which looks
/// like a hung server.
pub fn log_filter(raw: Option<&str>) -> (String, Option<String>) {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return ("info".into(), None);
    };
    let level_ok = |l: &str| LEVELS.contains(&l.to_ascii_lowercase().as_str());
    let module_ok = |m: &str| {
        let krate = m.split("::").next().unwrap_or_default();
        LOGGING_CRATES.contains(&krate)
    };
    // A trailing `/regex` filters messages; it cannot silence a misspelt directive.
    let (directives, regex) = match raw.split_once('/') {
        Some((d, r)) => (d, Some(r)),
        None => (raw, None),
    };
    let (kept, dropped): (Vec<&str>, Vec<&str>) = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .partition(|d| match d.split_once('=') {
            Some((module, level)) => module_ok(module.trim()) && level_ok(level.trim()),
            None => level_ok(d) || module_ok(d),
        });
    let mut filter = if kept.is_empty() {
        "info".to_string()
    } else {
        kept.join(",")
    };
    if let Some(r) = regex {
        filter = format!("{filter}/{r}");
    }
    let warning = (!dropped.is_empty()).then(|| {
        format!(
            "RUST_LOG: {} left out: neither a level ({}) nor module=level for a module of this \
             binary (e.g. switchboard=debug); logging with {filter:?}",
            dropped
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            LEVELS.join(", ")
        )
    });
    (filter, warning)
}

/// Runs a command that is not `serve`.
pub async fn run_tool(config: &Config, command: Command) -> ExitCode {
    match command {
        Command::Serve => ExitCode::SUCCESS,
        Command::Migrate => match migrate::run(
            &config.database_url,
            config.db_timeout * migrate::LOCK_WAITS,
        )
        .await
        {
            Ok(applied) => {
                println!("{} migration(s) applied", applied.len());
                for m in applied {
                    println!("  {m}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!(
                "migrate: DATABASE_URL: {}: {e}",
                config.database_url
            )),
        },
        Command::Check => check(config).await,
        Command::Token {
            user_id,
            ttl,
            name,
            orgs,
        } => {
            let auth = match Auth::new(config) {
                Ok(a) => a,
                Err(e) => return fail(&format!("JWT_PUBLIC_KEY: {e}")),
            };
            let exp = u64::try_from(chrono::Utc::now().timestamp())
                .unwrap_or(0)
                .saturating_add(ttl);
            let claims = Claims {
                sub: user_id,
                exp,
                name,
                orgs,
                iss: config.jwt_issuer.clone(),
                aud: config.jwt_audience.clone().map(serde_json::Value::String),
            };
            if config.uses_dev_secret() {
                // stderr, so `TOKEN=$(switchboard token alice)` still captures only the token.
                eprintln!(
                    "warning: signed with the built-in DEVELOPMENT secret (JWT_SECRET is not set): \
                     only a gateway on loopback with no JWT_SECRET accepts it"
                );
            }
            match auth.sign(&claims) {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("token: {e}")),
            }
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

async fn check(config: &Config) -> ExitCode {
    let mut ok = true;
    match Store::connect(&config.database_url, config.db_timeout).await {
        Err(e) => {
            let cause = crate::store::diagnose::explain_unreachable(
                &config.database_url,
                config.db_timeout,
            )
            .await
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
            eprintln!(
                "database: unreachable (DATABASE_URL: {}): {e}{cause}",
                config.database_url
            );
            ok = false;
        }
        Ok(_) => match migrate::pending(&config.database_url).await {
            Ok(p) if p.is_empty() => println!("database: ok (migrated)"),
            Ok(p) => {
                eprintln!(
                    "database: {} migration(s) pending ({}); run `switchboard migrate`",
                    p.len(),
                    p.join(", ")
                );
                ok = false;
            }
            Err(e) => {
                eprintln!("database: cannot read migrations: {e}");
                ok = false;
            }
        },
    }
    match &config.redis_url {
        None => println!("redis: not configured (single node)"),
        Some(url) => match crate::relay::ping_redis(url).await {
            Ok(()) => println!("redis: ok"),
            Err(e) => {
                eprintln!("redis: unreachable: {e}");
                ok = false;
            }
        },
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn a_misspelt_rust_log_directive_is_left_out_with_a_warning() {
        assert_eq!(log_filter(None), ("info".to_string(), None));
        for good in [
            "debug",
            "switchboard=debug,actix_web=warn",
            "WARN",
            "info/session",
        ] {
            assert_eq!(log_filter(Some(good)), (good.to_string(), None), "{good}");
        }
        for (bad, kept) in [
            ("inof", "info"),
            ("switchboard=loud", "info"),
            ("verbose", "info"),
            ("debug,foo=info", "debug"),
            ("reqwest=debug,typo/x", "reqwest=debug/x"),
        ] {
            let (spec, warning) = log_filter(Some(bad));
            assert_eq!(spec, kept, "{bad}");
            let w = warning.unwrap();
            let dropped = bad.split('/').next().unwrap().rsplit(',').next().unwrap();
            assert!(w.contains(dropped), "{bad}: {w}");
        }
    }
}
