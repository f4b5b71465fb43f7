//! `DATABASE_URL`: a SQLite file (the embedded default) or a Postgres URL.

use std::path::PathBuf;

use super::ConfigError;

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file, created on first start.
    Sqlite(PathBuf),
    /// A Postgres connection URL.
    Postgres(String),
}

impl std::fmt::Display for DatabaseUrl {
    /// Where the database is, for error lines: the password is left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "SQLite file {}", path.display()),
            DatabaseUrl::Postgres(raw) => match url::Url::parse(raw) {
                Ok(u) => write!(
                    f,
                    "Postgres at {}:{}{} as {}",
                    u.host_str().unwrap_or("?"),
                    u.port().unwrap_or(5432),
                    u.path(),
                    if u.username().is_empty() {
                        "(default user)"
                    } else {
                        u.username()
                    }
                ),
                Err(_) => f.write_str("Postgres"),
            },
        }
    }
}

/// Parses `DATABASE_URL`.
pub fn parse_database_url(raw: &str) -> Result<DatabaseUrl, ConfigError> {
    let hint = "put sqlite://FILE (e.g. sqlite://switchboard.db) or postgres://USER@HOST:PORT/DB";
    if let Some(path) = raw.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(ConfigError {
                var: "DATABASE_URL",
                problem: "the sqlite URL names no file".into(),
                hint,
            });
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
    }
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        return match url::Url::parse(raw) {
            Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => {
                Ok(DatabaseUrl::Postgres(raw.to_string()))
            }
            _ => Err(ConfigError {
                var: "DATABASE_URL",
                problem: "not a valid postgres URL".into(),
                hint,
            }),
        };
    }
    Err(ConfigError {
        var: "DATABASE_URL",
        problem: "unknown scheme".into(),
        hint,
    })
}
