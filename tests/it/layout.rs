//! The module graph: imports run one way (docs/architecture.md, "Layers"). Each top-level
//! module has a layer; a module may import only modules of a lower layer, so no two import
//! each other and there is no cycle. Reads `src/` as text: every `crate::name` path counts.

use std::collections::BTreeMap;
use std::path::Path;

/// Top-level modules by layer, lowest first. Modules of one layer may not import each other.
const LAYERS: &[&[&str]] = &[
    &["protocol"],
    &[
        "config", "metrics", "stripes", "expiring", "limits", "envelope", "memo",
    ],
    &["auth", "peer", "roster"],
    &["store"],
    &["registry"],
    &["relay"],
    &["session"],
    &["commit"],
    &["context"],
    &["service"],
    &["error"],
    // api/mod.rs mounts `/ws` in the one route table; ws/ never imports api/.
    &["ws"],
    &["api"],
    &["shutdown"],
    &["app", "cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The module path of a source file (`src/ws/session.rs` → `["ws", "session"]`,
/// `src/ws/mod.rs` → `["ws"]`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level modules a file's text names: `crate::a`, `crate::{a, b::c}`, and
/// `super::super::…` chains that climb to the crate root.
fn imports(text: &str, path: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = text[i + "crate::".len()..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split at commas outside nested braces.
            let mut depth = 0;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push(ident(group[start..j].trim()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(ident(group[start..j].trim()));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(ident(rest));
        }
    }
    for (i, _) in text.match_indices("super::super::") {
        // Count the whole chain of `super::` that starts here (not inside a longer one).
        if text[..i].ends_with("super::") {
            continue;
        }
        let mut rest = &text[i..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            ups += 1;
            rest = r;
        }
        if ups == path.len() {
            out.push(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn imports_run_one_way_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<(String, String), String> = BTreeMap::new();
    for f in &files {
        let path = module_path(&src, f);
        let Some(from) = path.first().cloned() else {
            continue;
        };
        if from == "main" || from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for to in imports(&text, &path) {
            if to != from {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| f.display().to_string());
            }
        }
    }
    assert!(edges.len() > 20, "too few imports found: {edges:?}");
    let mut wrong = Vec::new();
    for ((from, to), file) in &edges {
        let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) else {
            wrong.push(format!(
                "{from} -> {to}: module without a layer (add it to LAYERS)"
            ));
            continue;
        };
        if lt >= lf {
            wrong.push(format!(
                "{from} -> {to} (in {file}) imports upward or sideways"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_import_scan_sees_groups_and_super_chains() {
    let path = vec!["ws".to_string(), "session".to_string()];
    let found = imports(
        "use crate::{protocol::close, service::{self, Caller}};\nuse super::super::api::x;",
        &path,
    );
    assert_eq!(found, ["protocol", "service", "api"]);
}
