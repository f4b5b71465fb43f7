//! The documentation's commands run as written: every `sh` block of docs/server-api.md, in
//! order, with real curl against a real gateway.

use std::path::Path;

use serde_json::json;

use crate::harness::{API_KEY, Backend, SECRET, Server, TempDir, binary};

/// The ```sh blocks of a Markdown file, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn server_api_doc_commands_run_as_written() {
    let s = Server::start_host(Backend::Sqlite, &[]).await;
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/server-api.md"))
            .unwrap();
    let blocks = sh_blocks(&doc);
    assert!(blocks.len() >= 15, "found only {} sh blocks", blocks.len());
    // `switchboard` on the PATH, as after `cargo install --path .`.
    let dir = TempDir::new();
    let bin = dir.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(binary(), bin.join("switchboard")).unwrap();
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir.0)
        .env("SB", format!("http://{}/api/v1", s.addr))
        .env("SERVER_API_KEY", API_KEY)
        .env("JWT_SECRET", SECRET)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the doc's commands failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    eprintln!("{stdout}");
    // What the walkthrough says happened, did.
    assert!(
        stdout.contains(r#"{"seq":1,"kind":"payment","sender_id":"system"}"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"{"seq":2,"kind":"dispute","sender_id":"client-42"}"#),
        "{stdout}"
    );
    assert!(stdout.contains(r#"["payment","dispute"]"#), "{stdout}");
    assert!(stdout.contains("Ana is on the way"), "{stdout}");
    let host = s.host(API_KEY);
    let (st, t) = host.get("/threads/by-ref/job:123").await;
    assert_eq!(st, 200);
    assert_eq!(
        t["last_seq"], 2,
        "the repeated payment was not posted twice: {t}"
    );
    assert_eq!(
        t["members"],
        json!(["client-42"]),
        "the cleaner was removed"
    );
    let (_, templates) = host.get("/templates").await;
    assert_eq!(templates["templates"], json!([]));
}

/// The first block fenced as ```lang in a Markdown file.
fn first_block(markdown: &str, lang: &str) -> String {
    let open = format!("```{lang}\n");
    let start = markdown.find(&open).map(|i| i + open.len()).expect("block");
    let len = markdown[start..].find("```").expect("closed");
    markdown[start..start + len].to_string()
}

#[tokio::test]
async fn webhook_verification_snippets_accept_a_real_delivery_and_refuse_a_forged_one() {
    let secret = "webhook-secret-for-the-docs-test-0123456789";
    let r = crate::harness::Receiver::start(0).await;
    let s = Server::start_with(
        Backend::Sqlite,
        &[
            ("WEBHOOK_URL", r.url.as_str()),
            ("WEBHOOK_SECRET", secret),
            ("WEBHOOK_EVENTS", "thread.created"),
        ],
    )
    .await;
    s.http("alice").direct("bob").await;
    let d = r
        .wait_for("thread.created", 1, std::time::Duration::from_secs(10))
        .await
        .remove(0);
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/server-api.md"))
            .unwrap();
    let dir = TempDir::new();
    let body = dir.0.join("body.json");
    std::fs::write(&body, &d.body).unwrap();
    let py = format!(
        "{}\nimport sys\nb = open(sys.argv[1], 'rb').read()\n\
         print(verify(sys.argv[2].encode(), sys.argv[3], b), verify(sys.argv[2].encode(), sys.argv[3], b + b' '))\n",
        first_block(&doc, "python")
    );
    std::fs::write(dir.0.join("verify.py"), py).unwrap();
    std::fs::write(dir.0.join("verify.js"), first_block(&doc, "js")).unwrap();
    let node = "const {verify} = require(process.argv[1] + '/verify.js'); \
                const b = require('fs').readFileSync(process.argv[2]); \
                console.log(verify(process.argv[3], process.argv[4], b), \
                verify(process.argv[3], process.argv[4], Buffer.concat([b, Buffer.from(' ')])));";
    let runs = [
        std::process::Command::new("python3")
            .arg(dir.0.join("verify.py"))
            .arg(&body)
            .arg(secret)
            .arg(&d.signature)
            .output()
            .expect("python3"),
        std::process::Command::new("node")
            .arg("-e")
            .arg(node)
            .arg(&dir.0)
            .arg(&body)
            .arg(secret)
            .arg(&d.signature)
            .output()
            .expect("node"),
    ];
    for (lang, out) in ["python", "node"].iter().zip(runs) {
        let said = String::from_utf8_lossy(&out.stdout).trim().to_lowercase();
        assert_eq!(
            said,
            "true false",
            "{lang}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The ```json blocks of the Markdown section headed `heading`, each as its lines.
fn json_blocks_of_section(markdown: &str, heading: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut inside = false;
    let mut current: Option<Vec<String>> = None;
    for line in markdown.lines() {
        if line.starts_with("## ") {
            inside = line.trim() == heading;
            continue;
        }
        if !inside {
            continue;
        }
        match (&mut current, line.trim_end()) {
            (None, "```json") => current = Some(Vec::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(b), l) => b.push(l.to_string()),
            (None, _) => {}
        }
    }
    blocks
}

/// Whether `got` has every field `shown` has, with the same value where `shown` gives a
/// plain one (a string without `…` and not a placeholder id, a number, a bool, null), and
/// recursively for objects and for arrays of the same length.
fn matches_shown(shown: &serde_json::Value, got: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (shown, got) {
        (Value::Object(s), Value::Object(g)) => {
            for (k, v) in s {
                if k == "…" {
                    continue;
                }
                let Some(gv) = g.get(k) else {
                    panic!("{path}.{k} is in the doc, not in the reply {got}");
                };
                // Ids, times and cursors are examples.
                if matches!(
                    k.as_str(),
                    "id" | "thread_id" | "created_at" | "updated_at" | "next"
                ) && !v.is_null()
                {
                    continue;
                }
                matches_shown(v, gv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(s), Value::Array(g)) => {
            assert_eq!(s.len(), g.len(), "{path}: {got}");
            for (i, (a, b)) in s.iter().zip(g).enumerate() {
                matches_shown(a, b, &format!("{path}[{i}]"));
            }
        }
        // `…` marks an example; T, M and C stand for the ids the doc says to put in.
        (Value::String(s), _) if s.contains('…') || ["T", "M", "C"].contains(&s.as_str()) => {}
        (s, g) => assert_eq!(s, g, "{path}"),
    }
}

#[tokio::test]
async fn protocol_doc_client_frames_get_the_replies_it_shows() {
    let s = Server::start(Backend::Sqlite).await;
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.md"))
            .unwrap();
    let blocks = json_blocks_of_section(&doc, "## Every client frame, ready to paste");
    let client_types = [
        "send",
        "typing",
        "read",
        "delivered",
        "history",
        "threads",
        "watch_presence",
        "unwatch_presence",
        "ping",
    ];
    let mut alice = s.ws("alice").await;
    let _bob = s.ws("bob").await;
    let (mut thread, mut first_message, mut cursor) =
        (None::<String>, None::<String>, None::<String>);
    let mut seen_types = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < blocks.len() {
        let block = &blocks[i];
        i += 1;
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(&block[0]) else {
            continue;
        };
        let kind = frame["type"].as_str().unwrap_or_default();
        if block.len() != 1 || !client_types.contains(&kind) {
            continue;
        }
        seen_types.insert(kind.to_string());
        // The placeholders, as the doc says to replace them.
        let mut text = block[0].clone();
        for (placeholder, value) in [("T", &thread), ("M", &first_message), ("C", &cursor)] {
            if let Some(v) = value {
                text = text.replace(&format!("\"{placeholder}\""), &format!("\"{v}\""));
            }
        }
        alice.send_text(&text).await;
        let reference = frame["ref"].as_str().unwrap().to_string();
        let reply = alice.reply_to(&reference).await;
        // The reply block's last line is the direct reply.
        let shown: serde_json::Value =
            serde_json::from_str(blocks[i].last().unwrap()).expect("the reply is JSON");
        i += 1;
        assert_eq!(reply["type"], shown["type"], "{text} got {reply}");
        matches_shown(&shown, &reply, &format!("reply to {text}"));
        if thread.is_none() {
            thread = reply["message"]["thread_id"].as_str().map(str::to_string);
            first_message = reply["message"]["id"].as_str().map(str::to_string);
        }
        if kind == "threads" && cursor.is_none() {
            cursor = reply["next"].as_str().map(str::to_string);
        }
    }
    assert_eq!(
        seen_types.len(),
        client_types.len(),
        "every client frame is shown: {seen_types:?}"
    );
}
