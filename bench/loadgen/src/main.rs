//! Switchboard's load generator. It drives real WebSocket sessions against running gateway
//! nodes and prints one JSON summary line on stdout (progress goes to stderr).
//!
//! ```text
//! loadgen <scenario> --nodes http://127.0.0.1:8080[,http://...] --secret S [--pids 123,456]
//!         [--seconds 10] [--pairs 50] [--window 4] [--groups 20] [--members 10]
//!         [--senders 4] [--rate 100] [--sockets 10000] [--sources 8] [--source-base 1]
//!         [--label text]
//! ```
//!
//! Scenarios: `direct`, `group`, `rate`, `idle`, `reconnect`, `mixed`. bench/run.sh starts
//! the gateways and runs every row of docs/performance.md.

mod conn;
mod scenarios;
mod session;
mod stats;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use conn::Target;
use scenarios::Params;

fn usage() -> ! {
    eprintln!(
        "usage: loadgen <direct|group|rate|idle|reconnect|mixed> --nodes URL[,URL] --secret S \
         [--pids P[,P]] [--seconds N] [--pairs N] [--window N] [--groups N] [--members N] \
         [--senders N] [--rate N] [--sockets N] [--sources N] [--source-base N] [--label TEXT]"
    );
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().unwrap_or_else(|| usage());
    let mut opts: HashMap<String, String> = HashMap::new();
    while let Some(k) = args.next() {
        let Some(k) = k.strip_prefix("--") else {
            usage()
        };
        let v = args.next().unwrap_or_else(|| usage());
        opts.insert(k.to_string(), v);
    }
    let num = |k: &str, d: u64| -> u64 {
        opts.get(k)
            .map(|v| v.parse().unwrap_or_else(|_| usage()))
            .unwrap_or(d)
    };
    // Source addresses 127.0.0.<base> .. 127.0.0.<base + sources - 1>, at most .254.
    let source_base = num("source-base", 1).clamp(1, 254);
    let target = Target {
        nodes: opts
            .get("nodes")
            .unwrap_or_else(|| usage())
            .split(',')
            .map(|s| s.trim_end_matches('/').to_string())
            .collect(),
        secret: opts.get("secret").cloned().unwrap_or_else(|| usage()),
        sources: num("sources", 8).clamp(1, (255 - source_base).min(250)) as u8,
        source_base: source_base as u8,
    };
    let params = Params {
        seconds: num("seconds", 10),
        pairs: num("pairs", 50) as usize,
        window: num("window", 4) as usize,
        groups: num("groups", 20) as usize,
        members: num("members", 10) as usize,
        senders: num("senders", 4) as usize,
        rate: num("rate", 100),
        sockets: num("sockets", 10_000) as usize,
        pids: opts
            .get("pids")
            .map(|p| p.split(',').filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        match scenario.as_str() {
            "direct" => scenarios::direct(&target, &params, &http).await,
            "rate" => scenarios::rate(&target, &params, &http).await,
            "group" => scenarios::group(&target, &params, &http, false).await,
            "mixed" => scenarios::group(&target, &params, &http, true).await,
            "idle" => scenarios::idle(&target, &params).await,
            "reconnect" => scenarios::reconnect(&target, &params, &http).await,
            _ => usage(),
        }
    });
    let summary = json!({
        "scenario": scenario,
        "label": opts.get("label"),
        "nodes": target.nodes.len(),
        "seconds": params.seconds,
        "params": {
            "pairs": params.pairs, "window": params.window, "groups": params.groups,
            "members": params.members, "senders": params.senders, "rate": params.rate,
            "sockets": params.sockets,
        },
        "result": result,
    });
    println!("{summary}");
    // Sessions still open are dropped with the runtime; the exit code says whether anything
    // was lost.
    rt.shutdown_timeout(Duration::from_secs(1));
    let problems = problems(&scenario, &params, &summary["result"]);
    for p in &problems {
        eprintln!("loadgen {scenario}: {p}");
    }
    std::process::exit(if problems.is_empty() { 0 } else { 1 });
}

/// What makes a run fail (exit 1), so that a smoke run cannot pass on a gateway that lost,
/// refused or did nothing: a missing or duplicate delivery, an error the gateway sent (only
/// `overrun`, the generator's own lateness, is allowed), or nothing done at all.
fn problems(scenario: &str, params: &Params, r: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["missing", "duplicate"] {
        let n = r[key].as_u64().unwrap_or(0);
        if n > 0 {
            out.push(format!("{n} {key}"));
        }
    }
    if let Some(errors) = r["errors"].as_object() {
        for (code, n) in errors.iter().filter(|(code, _)| *code != "overrun") {
            out.push(format!("{n} errors `{code}`"));
        }
    }
    let done = |key: &str| r[key].as_u64().unwrap_or(0);
    match scenario {
        "idle" => {
            let opened = done("sockets");
            if opened < params.sockets as u64 {
                out.push(format!("{opened} of {} sockets opened", params.sockets));
            }
            if done("pinged_ok_of_100") < opened.min(100) {
                out.push(format!(
                    "{} of the sampled sockets answered a ping",
                    done("pinged_ok_of_100")
                ));
            }
        }
        "reconnect" if done("reconnects") == 0 => out.push("no reconnect".into()),
        "direct" | "group" | "rate" | "mixed" if done("acked") == 0 => {
            out.push("no send acknowledged".into())
        }
        _ => {}
    }
    out
}
