//! The binary's subcommands and configuration errors.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Backend, SECRET, Server, TempDir, command, fresh_database};

fn run(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = command(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn token_prints_a_verifiable_token() {
    let dir = TempDir::new();
    let (code, out, _) = run(
        &dir.0,
        &[("JWT_SECRET", SECRET)],
        &[
            "token", "alice", "--ttl", "60", "--name", "Alice", "--org", "acme",
        ],
    );
    assert_eq!(code, 0);
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_aud = false;
    let data = jsonwebtoken::decode::<serde_json::Value>(
        out.trim(),
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .unwrap();
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims["name"], "Alice");
    assert_eq!(data.claims["orgs"], serde_json::json!(["acme"]));
    let ttl = data.claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((55..=60).contains(&ttl));
}

#[test]
fn bad_configuration_exits_with_one_line_naming_the_variable() {
    let dir = TempDir::new();
    for (var, value) in [
        ("BIND_ADDR", "not-an-address"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("JWT_PUBLIC_KEY", "/nonexistent/key.pem"),
        ("HEARTBEAT_S", "soon"),
        ("WORKERS", "0"),
        ("WORKERS", "513"),
    ] {
        let (code, _, err) = run(&dir.0, &[(var, value)], &["serve"]);
        assert_ne!(code, 0, "{var}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{var}: {err}");
        assert!(lines[0].contains(var), "{var}: {err}");
    }
}

#[tokio::test]
async fn check_reports_pending_migrations_then_passes_after_migrate() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let dir = TempDir::new();
        let url = fresh_database(backend, &dir.0).await;
        let env = [("DATABASE_URL", url.as_str())];
        let (code, _, err) = run(&dir.0, &env, &["check"]);
        assert_eq!(code, 1, "{backend:?}: {err}");
        assert!(err.contains("switchboard migrate"), "{err}");
        let (code, out, _) = run(&dir.0, &env, &["migrate"]);
        assert_eq!(code, 0);
        let shipped = std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"),
        )
        .unwrap()
        .count();
        assert!(
            out.contains(&format!("{shipped} migration(s) applied")),
            "{out}"
        );
        let (code, out, _) = run(&dir.0, &env, &["check"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("database: ok"));
    }
}

#[test]
fn check_fails_naming_what_is_unreachable() {
    let dir = TempDir::new();
    let (code, _, err) = run(
        &dir.0,
        &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")],
        &["check"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("database"), "{err}");
    let (code, _, err) = run(&dir.0, &[("REDIS_URL", "redis://127.0.0.1:1")], &["check"]);
    assert_eq!(code, 1);
    assert!(err.contains("redis"), "{err}");
}

#[tokio::test]
async fn serve_with_no_configuration_creates_the_sqlite_file_and_warns() {
    let dir = TempDir::new();
    let mut child = command(&dir.0)
        .env("BIND_ADDR", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let done = line.contains("listening on");
            seen.push(line);
            if done {
                break;
            }
        }
        seen.join("\n")
    });
    let log = tokio::time::timeout(Duration::from_secs(30), lines)
        .await
        .unwrap()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("DEVELOPMENT secret"), "{log}");
    assert!(log.contains("sqlite store"), "{log}");
    assert!(dir.0.join("switchboard.db").exists());
}

/// A node whose migration lock is held elsewhere (another node's migration stuck) gives up
/// after `LOCK_WAITS` × `DB_TIMEOUT_MS` with an error naming the lock, instead of hanging;
/// once the lock is free it migrates.
#[tokio::test]
async fn migrate_gives_up_on_a_migration_lock_held_elsewhere() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    let dir = TempDir::new();
    let url = fresh_database(Backend::Postgres, &dir.0).await;
    let mut holder = AsyncPgConnection::establish(&url).await.unwrap();
    // The key the gateway's migrations lock ("sbmigrat").
    let key = 0x7362_6d69_6772_6174_i64;
    holder
        .batch_execute(&format!("SELECT pg_advisory_lock({key})"))
        .await
        .unwrap();
    let env = [("DATABASE_URL", url.as_str()), ("DB_TIMEOUT_MS", "250")];
    let started = std::time::Instant::now();
    let (code, _, err) = run(&dir.0, &env, &["migrate"]);
    let took = started.elapsed();
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("migration lock within 3000 ms"), "{err}");
    assert!(took < Duration::from_secs(10), "gave up after {took:?}");
    holder
        .batch_execute(&format!("SELECT pg_advisory_unlock({key})"))
        .await
        .unwrap();
    let (code, out, err) = run(&dir.0, &env, &["migrate"]);
    assert_eq!(code, 0, "{out}{err}");
}

/// `WORKERS` sets how many threads serve sockets and requests (actix names them
/// `actix-rt|system`), and the node serves with it.
#[tokio::test]
async fn workers_sets_the_threads_that_serve() {
    for workers in [1, 3] {
        let n = workers.to_string();
        let server = Server::start_with(Backend::Sqlite, &[("WORKERS", n.as_str())]).await;
        let (status, body) = server.http("ann").get("/threads").await;
        assert_eq!(status, 200, "{body}");
        let serving = || {
            std::fs::read_dir(format!("/proc/{}/task", server.pid()))
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|comm| comm.trim_end() == "actix-rt|system")
                .count()
        };
        // The workers start beside the first one to serve: give them a moment, a long one
        // on a machine busy with the rest of the suite.
        for _ in 0..200 {
            if serving() >= workers {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(serving(), workers, "threads serving with WORKERS={workers}");
    }
}
