//! The browser clients' own suites, against this build of the gateway: the JS client
//! (clients/js: reconnect, 4001 refresh, outbox, gap fill, SSE fallback, tabs sharing one
//! socket, an outbox that survives a reload), the React hooks (clients/react) and the demo
//! page in headless Chromium (clients/demo). Each starts its own gateway processes from
//! `SWITCHBOARD_BIN`. They need Node.js, the npm registry (for `npm ci` on a fresh clone) and
//! Debian's chromium; they fail, never skip, without them.

use std::process::Command;

use crate::harness::{binary, npm_installed};

/// Runs `npm run <script>` in a client package; panics with its output on failure.
fn npm(dir: &std::path::Path, script: &str) {
    let out = Command::new("npm")
        .args(["run", "--silent", script])
        .current_dir(dir)
        .env("SWITCHBOARD_BIN", binary())
        .output()
        .unwrap_or_else(|e| panic!("npm: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "npm run {script} in {} failed:\n{text}",
        dir.display()
    );
    if script == "test" {
        // node --test's summary, for the log of the run.
        let summary: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("# tests") || l.starts_with("# pass") || l.starts_with("# fail")
            })
            .collect();
        eprintln!("{}: {}", dir.display(), summary.join(", "));
    }
}

#[test]
fn the_js_client_the_react_hooks_and_the_demo_page_pass_their_suites() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Debian's chromium: apt-get install chromium"
    );
    // One after the other: the demo builds on the hooks, the hooks on the client. The demo's
    // own bundle is not rebuilt here: the committed one is what the binary serves, and
    // clients/demo/check-built.sh (run by .ci/run) fails when it is stale.
    for dir in ["clients/js", "clients/react", "clients/demo"] {
        let dir = npm_installed(dir);
        if !dir.ends_with("clients/demo") {
            npm(&dir, "build");
        }
        npm(&dir, "test");
    }
}
