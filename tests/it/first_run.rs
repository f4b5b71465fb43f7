//! A new user's first ten minutes: the README's two-terminal chat with a real wscat, the demo
//! page and its dev login, the reason a token is refused, and start-up errors that say
//! what to fix.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Backend, Client, SECRET, Server, TempDir, command, npm_installed, repo};

/// The README's ```json blocks and ```sh blocks, in order, each with its kind.
fn readme_blocks() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, l) if l.starts_with("```") && l.len() > 3 => {
                current = Some((l[3..].to_string(), String::new()));
            }
            (Some(_), "```") => out.extend(current.take()),
            (Some((_, body)), l) => {
                body.push_str(l);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// A wscat started by one of the README's `sh` blocks, its output read line by line.
struct Wscat {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    _dir: TempDir,
}

impl Wscat {
    fn start(block: &str, addr: &str, wscat_bin: &std::path::Path) -> Wscat {
        let script = block
            .replace("127.0.0.1:8080", addr)
            .replace("./target/release/switchboard", crate::harness::binary());
        let dir = TempDir::new();
        // The README's commands as written, with the dev secret (no JWT_SECRET) and the
        // test's wscat first on the PATH.
        let path = format!(
            "{}:{}",
            wscat_bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = command(&dir.0)
            .program_bash(&script)
            .env("PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Wscat {
            child,
            lines,
            _dir: dir,
        }
    }

    /// Types one line, as a user would at wscat's prompt.
    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next received frame of `kind` (wscat prints frames after a `> ` prompt or alone).
    fn frame(&self, kind: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {kind} frame from wscat within 10 s"));
            let Some(start) = line.find('{') else {
                continue;
            };
            let v: Value = serde_json::from_str(&line[start..]).unwrap_or(Value::Null);
            if v["type"] == kind {
                return v;
            }
        }
    }
}

impl Drop for Wscat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Command::new(binary)` with a clean environment, but running `bash -c script`.
trait ProgramBash {
    fn program_bash(self, script: &str) -> Command;
}

impl ProgramBash for Command {
    fn program_bash(self, script: &str) -> Command {
        let mut c = Command::new("bash");
        c.args(["-c", script]);
        for (k, v) in self.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(d) = self.get_current_dir() {
            c.current_dir(d);
        }
        c
    }
}

#[tokio::test]
async fn the_readme_two_terminal_chat_works_with_a_real_wscat() {
    let wscat = npm_installed("tests/tools").join("node_modules/.bin/wscat");
    // The README's gateway: the development secret, nothing configured.
    let s = Server::start_with(Backend::Sqlite, &[("JWT_SECRET", "")]).await;
    let blocks = readme_blocks();
    let shell: Vec<&String> = blocks
        .iter()
        .filter(|(k, b)| k == "sh" && b.contains("wscat -c"))
        .map(|(_, b)| b)
        .collect();
    assert_eq!(shell.len(), 2, "the README has alice's and bob's terminal");
    let typed: Vec<Value> = blocks
        .iter()
        .filter(|(k, _)| k == "json")
        .filter_map(|(_, b)| serde_json::from_str::<Value>(b.trim()).ok())
        .filter(|v| v.get("ref").is_some() && v["type"] != "ack")
        .collect();
    let [alice_send, bob_send, bob_read] = &typed[..] else {
        panic!("expected alice's send, bob's send and bob's read in the README: {typed:?}");
    };
    assert_eq!(alice_send["to"], "bob");
    assert_eq!(
        bob_send["to"], "alice",
        "bob answers without knowing the thread id"
    );

    let mut alice = Wscat::start(shell[0], &s.addr, &wscat);
    assert_eq!(alice.frame("hello")["user_id"], "alice");
    let mut bob = Wscat::start(shell[1], &s.addr, &wscat);
    assert_eq!(bob.frame("hello")["user_id"], "bob");

    alice.type_line(&alice_send.to_string());
    let thread = alice.frame("thread");
    let tid = thread["thread"]["id"].as_str().unwrap().to_string();
    let ack = alice.frame("ack");
    assert_eq!(ack["message"]["seq"], 1);
    assert_eq!(bob.frame("thread")["thread"]["id"], tid.as_str());
    let m = bob.frame("message");
    assert_eq!(m["message"]["body"], alice_send["body"]);

    bob.type_line(&bob_send.to_string());
    assert_eq!(bob.frame("ack")["message"]["thread_id"], tid.as_str());
    let reply = alice.frame("message");
    assert_eq!(reply["message"]["body"], bob_send["body"]);
    assert_eq!(reply["message"]["thread_id"], tid.as_str());

    // "put the real thread id from the thread event in place of T"
    bob.type_line(&bob_read.to_string().replace("\"T\"", &format!("\"{tid}\"")));
    let read = alice.frame("read");
    assert_eq!(
        (read["user_id"].clone(), read["seq"].clone()),
        (json!("bob"), json!(1))
    );

    // Bob quits: alice sees him go offline.
    drop(bob);
    let p = alice.frame("presence");
    assert_eq!(
        (p["user_id"].clone(), p["online"].clone()),
        (json!("bob"), json!(false))
    );
}

#[tokio::test]
async fn the_demo_page_is_served_and_dev_login_exists_only_with_the_dev_secret() {
    let s = Server::start_with(Backend::Sqlite, &[("JWT_SECRET", "")]).await;
    let http = reqwest::Client::new();
    let page = http.get(s.url("/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("app.js") && html.contains("app.css"),
        "{html}"
    );
    for (path, kind, built) in [
        ("/app.js", "text/javascript", "clients/demo/dist/app.js"),
        ("/app.css", "text/css", "clients/demo/dist/app.css"),
    ] {
        let r = http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        // What is served is what is committed (the binary embeds clients/demo/dist).
        assert_eq!(
            r.bytes().await.unwrap(),
            std::fs::read(repo().join(built)).unwrap()
        );
    }
    assert!(s.log().contains("dev login is ON"), "a loud line says so");
    assert!(s.log().contains(&format!("open http://{}/", s.addr)));

    let r = http
        .post(s.url("/api/v1/dev/token"))
        .json(&json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("ws://{}/ws?token={token}", s.addr);
    let mut ws = Client::connect(
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap(),
    )
    .await
    .expect("the dev token opens a socket");
    assert_eq!(ws.next().await["user_id"], "alice");
    let bad = http
        .post(s.url("/api/v1/dev/token"))
        .json(&json!({"user_id": "system"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);

    // With a real secret, the route is gone whatever the body, and nothing says it is on.
    let real = Server::start(Backend::Sqlite).await;
    for body in [json!({"user_id": "alice"}), json!({})] {
        let r = http
            .post(real.url("/api/v1/dev/token"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{body}");
    }
    assert!(!real.log().contains("dev login is ON"));
    // The page itself is served either way (it takes a pasted token).
    let r = http.get(real.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn a_refused_token_says_why_to_the_client_and_in_the_debug_log() {
    let s = Server::start_with(Backend::Sqlite, &[("RUST_LOG", "switchboard=debug")]).await;
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let foreign = sign(
        json!({"sub": "alice", "exp": now + 60}),
        "some-other-secret-0123456789abcdef",
    );
    let early = sign(
        json!({"sub": "alice", "exp": now + 600, "nbf": now + 300}),
        SECRET,
    );
    let expired = sign(json!({"sub": "alice", "exp": now - 60}), SECRET);
    let cases = [
        (foreign.as_str(), "invalid token: bad signature"),
        ("not.a.token", "invalid token: malformed"),
        (early.as_str(), "invalid token: not valid yet (nbf)"),
        (expired.as_str(), "token expired"),
    ];
    for (token, why) in cases {
        for path in ["/ws", "/api/v1/events"] {
            let r = reqwest::get(s.url(&format!("{path}?token={token}")))
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 401, "{path} {why}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            assert_eq!(body["error"]["message"], why, "{path}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s
        .log()
        .contains("token refused on /ws: invalid token: bad signature")
    {
        assert!(Instant::now() < deadline, "no debug line:\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = s.log();
    for (token, _) in cases {
        assert!(!log.contains(token), "a token reached the log");
    }
}

/// Runs the binary with `env` until it exits; its stderr.
fn start_error(env: &[(&str, &str)]) -> String {
    let dir = TempDir::new();
    let mut cmd = command(&dir.0);
    cmd.env("JWT_SECRET", SECRET)
        .env("BIND_ADDR", "127.0.0.1:0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.arg("serve").output().unwrap();
    assert!(!out.status.success(), "{env:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn start_up_errors_name_the_variable_and_the_cause() {
    // A port nothing listens on: the line names the variable, the host and port, the user,
    // and the cause, but never the password.
    let port = crate::harness::free_port();
    let err = start_error(&[(
        "DATABASE_URL",
        &format!("postgres://sbuser:hunter2secret@127.0.0.1:{port}/sb"),
    )]);
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}/sb as sbuser")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("refused"), "the cause: {err}");
    assert!(!err.contains("hunter2secret"), "{err}");
    let err = start_error(&[("ALLOWED_ORIGINS", "not-a-url")]);
    assert!(
        err.contains("ALLOWED_ORIGINS") && err.contains("not-a-url"),
        "{err}"
    );
}

#[test]
fn a_misspelt_rust_log_still_logs_at_info_and_says_why() {
    let dir = TempDir::new();
    let mut child = command(&dir.0)
        .env("JWT_SECRET", SECRET)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", format!("sqlite://{}/t.db", dir.0.display()))
        .env("RUST_LOG", "inof")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        let done = line.contains("listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = seen.join("\n");
    assert!(all.contains("RUST_LOG: \"inof\""), "{all}");
    assert!(
        all.contains("listening on"),
        "info lines still show:\n{all}"
    );
}

#[test]
fn token_warns_on_stderr_when_it_signs_with_the_dev_secret() {
    let dir = TempDir::new();
    let out = command(&dir.0).args(["token", "alice"]).output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEVELOPMENT secret"), "{stderr}");
    // stdout is the token alone, for TOKEN=$(switchboard token alice).
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split('.')
            .count(),
        3
    );
    let out = command(&dir.0)
        .env("JWT_SECRET", SECRET)
        .args(["token", "alice"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).is_empty());
}

#[test]
fn the_test_run_leaves_no_postgres_database_behind() {
    // Each test's databases go with its TempDir; this checks the mechanism on one of them.
    let name = {
        let dir = TempDir::new();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = rt.block_on(crate::harness::fresh_database(Backend::Postgres, &dir.0));
        url.rsplit('/').next().unwrap().to_string()
    };
    let out = Command::new("psql")
        .arg(format!("{}/postgres", crate::harness::pg_base()))
        .args([
            "-qAtc",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
        ])
        .output()
        .expect("psql");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "{name} left behind"
    );
}
