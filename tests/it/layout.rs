//! The module graph: imports run one way (docs/architecture.md, "Layers"). Each top-level
//! module has a layer; a module may import only modules of a lower layer, so no two import
//! each other and there is no cycle. Reads `src/` as text: every `crate::name` path counts.

use std::collections::BTreeMap;
use std::path::Path;

/// Top-level modules by layer, lowest first. Modules of one layer may not import each other.
const LAYERS: &[&[&str]] = &[
    &["protocol"],
    &[
        "config", "metrics", "stripes", "expiring", "limits", "envelope",
    ],
    &["auth"],
    &["store"],
    &["registry"],
    &["relay"],
    &["session"],
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

/// The top-level module a source file belongs to (`src/ws/session.rs` → `ws`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
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
        let Some(from) = top_module(&src, f) else {
            continue;
        };
        if from == "main" || from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let to: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
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
