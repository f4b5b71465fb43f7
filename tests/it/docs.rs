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
