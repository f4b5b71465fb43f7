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

/// Runs a command that is not `serve`.
pub async fn run_tool(config: &Config, command: Command) -> ExitCode {
    match command {
        Command::Serve => ExitCode::SUCCESS,
        Command::Migrate => match migrate::run(&config.database_url).await {
            Ok(applied) => {
                println!("{} migration(s) applied", applied.len());
                for m in applied {
                    println!("  {m}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("migrate: {e}")),
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
            eprintln!("database: unreachable: {e}");
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
