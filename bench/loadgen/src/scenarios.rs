//! The named scenarios. Each sets up its users and threads, runs for the given time, stops
//! its senders, waits for the last acks and deliveries, and returns its part of the summary:
//! every acknowledged message must reach every other member exactly once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::conn::{Target, next_json};
use crate::session::{Plan, Run, Seen, drive};
use crate::stats::{
    Counts, Latencies, machine_runqueue_wait_ns, machine_ticks, proc_usage, runqueue_wait_ns,
    tcp_kernel_kib,
};

/// Knobs shared by the scenarios.
pub struct Params {
    pub seconds: u64,
    pub pairs: usize,
    pub window: usize,
    pub groups: usize,
    pub members: usize,
    pub senders: usize,
    pub rate: u64,
    pub sockets: usize,
    pub pids: Vec<u32>,
}

/// Opens a session for each of `users` (session `i` on node `i % nodes`), `chunk` at a time,
/// stopping after the first chunk with a failure.
async fn open_chunked(
    t: &Target,
    users: &[String],
    chunk: usize,
) -> Vec<Result<crate::conn::Ws, String>> {
    let mut out = Vec::with_capacity(users.len());
    for (chunk_no, part) in users.chunks(chunk).enumerate() {
        let opened = join_all(part.iter().enumerate().map(|(j, u)| {
            let i = chunk_no * chunk + j;
            async move { t.open(i, u).await }
        }))
        .await;
        let failed = opened.iter().any(Result::is_err);
        out.extend(opened);
        if failed {
            break;
        }
        if users.len() > 1000 {
            eprintln!("[open] {} of {}", out.len(), users.len());
        }
    }
    out
}

/// Opens every session or panics: the scenarios need all of them.
async fn open_all(t: &Target, users: &[String]) -> Vec<crate::conn::Ws> {
    open_chunked(t, users, 200)
        .await
        .into_iter()
        .map(|o| o.unwrap_or_else(|e| panic!("opening a session: {e}")))
        .collect()
}

/// Runs the sessions for the scenario's time and checks what arrived: `members[k]` are the
/// users of thread `k`; `plans[i]` is session `i`'s plan.
async fn run_threads(
    t: &Target,
    p: &Params,
    users: Vec<String>,
    thread_of: Vec<String>,
    plans: Vec<Option<Plan>>,
    ticker: Option<(u64, Vec<mpsc::Sender<()>>)>,
) -> Value {
    let sessions = open_all(t, &users).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = Arc::new(Run {
        epoch: Instant::now(),
        counts: Counts::default(),
        ack_latency: Latencies::default(),
        delivery_latency: Latencies::default(),
        stop: stop_rx,
    });
    let before: Vec<_> = p.pids.iter().map(|&pid| proc_usage(pid)).collect();
    let waits0: Vec<_> = p.pids.iter().map(|&pid| runqueue_wait_ns(pid)).collect();
    let (machine0, own0) = (machine_ticks(), proc_usage(std::process::id()));
    let machine_wait0 = machine_runqueue_wait_ns();
    let started = Instant::now();
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(plans)
        .map(|(ws, plan)| tokio::spawn(drive(ws, plan, run.clone(), Duration::from_secs(2))))
        .collect();
    if let Some((rate, senders)) = ticker {
        tokio::spawn(open_loop(rate, senders, run.clone()));
    }
    progress(&run, p.seconds).await;
    let _ = stop_tx.send(true);
    let elapsed = started.elapsed().as_secs_f64().min(p.seconds as f64);
    let after: Vec<_> = p.pids.iter().map(|&pid| proc_usage(pid)).collect();
    let waits1: Vec<_> = p.pids.iter().map(|&pid| runqueue_wait_ns(pid)).collect();
    let (machine1, own1) = (machine_ticks(), proc_usage(std::process::id()));
    let machine_wait = machine_wait0.zip(machine_runqueue_wait_ns());
    let seen: Vec<Seen> = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap_or_default())
        .collect();
    let (missing, duplicate, last) = check(&thread_of, &seen, &run.counts);
    let acked = Counts::get(&run.counts.acked);
    let delivered = Counts::get(&run.counts.delivered);
    json!({
        "acked": acked,
        "acked_per_s": (acked as f64 / elapsed).round(),
        "delivered": delivered,
        "delivered_per_s": (delivered as f64 / elapsed).round(),
        "ack_latency_ms": run.ack_latency.summary(),
        "delivery_latency_ms": run.delivery_latency.summary(),
        "last_delivery_latency_ms": last.summary(),
        "missing": missing,
        "duplicate": duplicate,
        "errors": run.counts.errors(),
        "gateways": gateways(&p.pids, &before, &after, (&waits0, &waits1), elapsed),
        "machine": machine(machine0.zip(machine1), own0.zip(own1), machine_wait, elapsed),
    })
}

/// Two readings, before and after a run: (busy, total) ticks of the machine, or (RSS, CPU
/// ms) of a process.
type Span = Option<((u64, u64), (u64, u64))>;

/// How busy the whole machine was over the run, in percent of one core (200 = both of two
/// cores), the load generator's own share, and how long runnable tasks waited for a core
/// (percent of one core's time): when the box is saturated, latency is queueing.
fn machine(ticks: Span, own: Span, wait_ns: Option<(u64, u64)>, secs: f64) -> Value {
    // The cores /proc/stat sums over (its cpuN lines), which a taskset or cgroup does not narrow.
    let cores = std::fs::read_to_string("/proc/stat").map_or(1, |s| {
        s.lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count()
            .max(1)
    }) as f64;
    let busy = ticks.and_then(|((b0, t0), (b1, t1))| {
        (t1 > t0).then(|| ((b1 - b0) as f64 / (t1 - t0) as f64 * cores * 100.0).round())
    });
    let own = own.map(|((_, c0), (_, c1))| ((c1 - c0) as f64 / 10.0 / secs).round());
    json!({
        "cores": cores,
        "busy_percent": busy,
        "loadgen_cpu_percent": own,
        "runqueue_wait_percent": wait_ns.map(|(w0, w1)| wait_percent(w0, w1, secs)),
    })
}

/// Nanoseconds of waiting between two readings, as a percentage of one core over `secs`.
fn wait_percent(w0: u64, w1: u64, secs: f64) -> f64 {
    (w1.saturating_sub(w0) as f64 / 1e7 / secs * 10.0).round() / 10.0
}

/// Each session expects every acked message of its thread that it did not send itself.
fn check(thread_of: &[String], seen: &[Seen], counts: &Counts) -> (u64, u64, Latencies) {
    let mut acked: HashMap<&str, Vec<i64>> = HashMap::new();
    for s in seen {
        for (t, seq) in &s.acked {
            acked.entry(t.as_str()).or_default().push(*seq);
        }
    }
    let (mut missing, mut duplicate) = (0, 0);
    let mut last: HashMap<(&str, i64), u64> = HashMap::new();
    for (i, s) in seen.iter().enumerate() {
        let own: HashSet<i64> = s.acked.iter().map(|(_, q)| *q).collect();
        let mut got: HashSet<i64> = HashSet::new();
        for (t, seq, us) in &s.received {
            if !got.insert(*seq) {
                duplicate += 1;
            }
            let e = last.entry((t.as_str(), *seq)).or_default();
            *e = (*e).max(*us);
        }
        let expected = acked
            .get(thread_of[i].as_str())
            .map_or(&[][..], |v| v.as_slice());
        missing += expected
            .iter()
            .filter(|q| !own.contains(q) && !got.contains(q))
            .count() as u64;
    }
    Counts::add(&counts.missing, missing);
    let lat = Latencies::default();
    lat.extend(&last.into_values().collect::<Vec<_>>());
    (missing, duplicate, lat)
}

fn gateways(
    pids: &[u32],
    before: &[Option<(u64, u64)>],
    after: &[Option<(u64, u64)>],
    waits: (&[Option<u64>], &[Option<u64>]),
    secs: f64,
) -> Value {
    pids.iter()
        .zip(before.iter().zip(after))
        .zip(waits.0.iter().zip(waits.1))
        .map(|((pid, (b, a)), (w0, w1))| match (b, a) {
            (Some((_, c0)), Some((rss, c1))) => json!({
                "pid": pid, "rss_mib": *rss as f64 / 1024.0,
                "cpu_percent": ((c1 - c0) as f64 / 10.0 / secs).round(),
                "runqueue_wait_percent": w0.zip(*w1).map(|(w0, w1)| wait_percent(w0, w1, secs)),
            }),
            _ => json!({"pid": pid, "gone": true}),
        })
        .collect()
}

/// One progress line a second on stderr, for `seconds`.
async fn progress(run: &Run, seconds: u64) {
    let started = Instant::now();
    let mut last = (0, 0);
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (a, d) = (
            Counts::get(&run.counts.acked),
            Counts::get(&run.counts.delivered),
        );
        eprintln!(
            "[{:>3}s] acked {:>8} ({:>6}/s)  delivered {:>9} ({:>7}/s)",
            started.elapsed().as_secs(),
            a,
            a - last.0,
            d,
            d - last.1
        );
        last = (a, d);
    }
}

/// Hands out `rate` ticks a second, round-robin over the senders; a sender that is behind
/// (its window full) misses its tick, counted as `overrun`.
async fn open_loop(rate: u64, senders: Vec<mpsc::Sender<()>>, run: Arc<Run>) {
    let every = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut next = tokio::time::Instant::now();
    let mut i = 0;
    while !*run.stop.borrow() && !senders.is_empty() {
        next += every;
        tokio::time::sleep_until(next).await;
        if senders[i % senders.len()].try_send(()).is_err() && !*run.stop.borrow() {
            run.counts.error("overrun");
        }
        i += 1;
    }
}

/// `direct`: `pairs` senders each keep `window` sends in flight to their partner.
pub async fn direct(t: &Target, p: &Params, http: &reqwest::Client) -> Value {
    let (users, threads, plans) = pairs(t, p, http, None).await;
    run_threads(t, p, users, threads, plans, None).await
}

/// `rate`: open loop at `rate` sends a second over `pairs` pairs: latency against load.
pub async fn rate(t: &Target, p: &Params, http: &reqwest::Client) -> Value {
    let mut ticks = Vec::new();
    let (users, threads, plans) = pairs(t, p, http, Some(&mut ticks)).await;
    let mut out = run_threads(t, p, users, threads, plans, Some((p.rate, ticks))).await;
    out["offered_per_s"] = json!(p.rate);
    out
}

async fn pairs(
    t: &Target,
    p: &Params,
    http: &reqwest::Client,
    mut ticks: Option<&mut Vec<mpsc::Sender<()>>>,
) -> (Vec<String>, Vec<String>, Vec<Option<Plan>>) {
    let (mut users, mut threads, mut plans) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..p.pairs {
        let (s, r) = (format!("ps{i}"), format!("pr{i}"));
        let tid = t.direct(http, &s, &r).await;
        let tick = ticks.as_mut().map(|list| {
            let (tx, rx) = mpsc::channel(1);
            list.push(tx);
            rx
        });
        users.push(s);
        threads.push(tid.clone());
        plans.push(Some(Plan {
            thread_id: tid.clone(),
            window: p.window,
            ticks: tick,
            chatter: false,
        }));
        users.push(r);
        threads.push(tid);
        plans.push(None);
    }
    (users, threads, plans)
}

/// `group` (and `mixed`, with typing and receipts): `groups` groups of `members`, the first
/// `senders` of each sending with `window` in flight.
pub async fn group(t: &Target, p: &Params, http: &reqwest::Client, chatter: bool) -> Value {
    let (mut users, mut threads, mut plans) = (Vec::new(), Vec::new(), Vec::new());
    let mut ticks = Vec::new();
    for g in 0..p.groups {
        let members: Vec<String> = (0..p.members).map(|m| format!("g{g}m{m}")).collect();
        let tid = t.group(http, &members[0], &members).await;
        for (m, u) in members.into_iter().enumerate() {
            let sends = m < p.senders;
            let tick = (sends && chatter).then(|| {
                let (tx, rx) = mpsc::channel(1);
                ticks.push(tx);
                rx
            });
            users.push(u);
            threads.push(tid.clone());
            plans.push(sends.then(|| Plan {
                thread_id: tid.clone(),
                window: p.window,
                ticks: tick,
                chatter,
            }));
        }
    }
    let ticker = chatter.then_some((p.rate, ticks));
    let mut out = run_threads(t, p, users, threads, plans, ticker).await;
    if chatter {
        out["offered_per_s"] = json!(p.rate);
    }
    out
}

/// `idle`: `sockets` authenticated sessions that do nothing; the gateways' RSS per socket,
/// and the kernel's TCP memory per socket (both ends are on this machine).
pub async fn idle(t: &Target, p: &Params) -> Value {
    let base: Vec<_> = p.pids.iter().map(|&pid| proc_usage(pid)).collect();
    let kernel0 = tcp_kernel_kib();
    let users: Vec<String> = (0..p.sockets).map(|i| format!("idle{i}")).collect();
    let started = Instant::now();
    let mut sessions = Vec::with_capacity(users.len());
    let mut failed = None;
    for o in open_chunked(t, &users, 500).await {
        match o {
            Ok(ws) => sessions.push(ws),
            Err(e) => failed = Some(e),
        }
    }
    let open_s = started.elapsed().as_secs_f64();
    // Let allocations settle, then read.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = sessions.len().max(1) as f64;
    let after: Vec<_> = p.pids.iter().map(|&pid| proc_usage(pid)).collect();
    let kernel = tcp_kernel_kib()
        .zip(kernel0)
        .map(|(a, b)| a.saturating_sub(b));
    // Still alive: every session answers a ping.
    let mut alive = 0;
    for ws in sessions.iter_mut().take(100) {
        let ok = send_ping(ws).await;
        alive += usize::from(ok);
    }
    let per_socket: Vec<Value> = base
        .iter()
        .zip(&after)
        .map(|(b, a)| match (b, a) {
            (Some((r0, _)), Some((r1, _))) => json!({
                "rss_mib": *r1 as f64 / 1024.0,
                "kib_per_socket": ((*r1 as f64 - *r0 as f64) / n * 10.0).round() / 10.0,
            }),
            _ => json!(null),
        })
        .collect();
    json!({
        "sockets": sessions.len(),
        "failed": failed,
        "opened_per_s": (sessions.len() as f64 / open_s).round(),
        "gateways": per_socket,
        "kernel_tcp_kib_per_socket_pair": kernel.map(|k| (k as f64 / n * 10.0).round() / 10.0),
        "pinged_ok_of_100": alive,
    })
}

async fn send_ping(ws: &mut crate::conn::Ws) -> bool {
    let frame = json!({"type":"ping","ref":"idle"}).to_string();
    if ws.send(Message::text(frame)).await.is_err() {
        return false;
    }
    loop {
        match next_json(ws, Duration::from_secs(5)).await {
            Ok(v) if v["type"] == "pong" => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// `reconnect`: `sockets` clients each drop their session and reconnect, catching up with
/// `history` after the last seq they saw, while a writer keeps adding to their threads.
pub async fn reconnect(t: &Target, p: &Params, http: &reqwest::Client) -> Value {
    let writers = p.pairs.max(1);
    let mut threads = Vec::new();
    for i in 0..writers {
        threads.push(t.direct(http, &format!("rw{i}"), &format!("rr{i}")).await);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let counts = Arc::new(Counts::default());
    let catchup = Arc::new(Latencies::default());
    let mut tasks = Vec::new();
    for (i, tid) in threads.iter().enumerate() {
        // The writer: a steady trickle, so every reconnect has something to catch up on.
        let mut ws = t.open(i, &format!("rw{i}")).await.expect("writer session");
        let (tid, mut stop, rate) = (tid.clone(), stop_rx.clone(), p.rate.max(1));
        let counts = counts.clone();
        tasks.push(tokio::spawn(async move {
            let every = Duration::from_secs_f64(writers as f64 / rate as f64);
            while !*stop.borrow() {
                let f = json!({"type":"send","ref":"w","thread_id":tid,"body":"x"});
                if ws.send(Message::text(f.to_string())).await.is_err() {
                    counts.error("writer_closed");
                    return;
                }
                // A writer that fails would leave nothing to miss: its errors are counted.
                match next_json(&mut ws, Duration::from_secs(10)).await {
                    Ok(v) if v["type"] == "error" => {
                        counts.error(v["code"].as_str().unwrap_or("?"));
                    }
                    Ok(_) => {}
                    Err(_) => {
                        counts.error("writer_closed");
                        return;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => {}
                }
            }
        }));
    }
    for c in 0..p.sockets.max(1) {
        let tid = threads[c % threads.len()].clone();
        let user = format!("rr{}", c % threads.len());
        let (t, stop, counts, catchup) =
            (t.clone(), stop_rx.clone(), counts.clone(), catchup.clone());
        tasks.push(tokio::spawn(async move {
            let mut last = 0i64;
            let mut n = 0usize;
            while !*stop.borrow() {
                let started = Instant::now();
                let mut ws = match t.open(c + n * 7, &user).await {
                    Ok(ws) => ws,
                    Err(_) => {
                        counts.error("connect");
                        // A refused connect comes back at once: wait before the next.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                n += 1;
                let mut whole = true;
                loop {
                    if *stop.borrow() {
                        whole = false;
                        break;
                    }
                    let f = json!({"type":"history","ref":"h","thread_id":tid,"after_seq":last,"limit":200});
                    let _ = ws.send(Message::text(f.to_string())).await;
                    let page = loop {
                        match next_json(&mut ws, Duration::from_secs(10)).await {
                            Ok(v) if v["type"] == "ack" => break Some(v),
                            Ok(v) if v["type"] == "error" => {
                                counts.error(v["code"].as_str().unwrap_or("?"));
                                break None;
                            }
                            Ok(_) => continue,
                            Err(_) => {
                                counts.error("closed");
                                break None;
                            }
                        }
                    };
                    let Some(page) = page else { break };
                    let msgs = page["messages"].as_array().cloned().unwrap_or_default();
                    for m in &msgs {
                        let seq = m["seq"].as_i64().unwrap_or(0);
                        if seq != last + 1 {
                            Counts::add(&counts.missing, (seq - last - 1).max(0) as u64);
                        }
                        last = last.max(seq);
                    }
                    if page["has_more"] != true {
                        break;
                    }
                }
                if whole {
                    catchup.add(started);
                    Counts::add(&counts.reconnects, 1);
                }
                let _ = ws.close(None).await;
                if stop.has_changed().unwrap_or(true) {
                    break;
                }
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(p.seconds)).await;
    let _ = stop_tx.send(true);
    let elapsed = started.elapsed().as_secs_f64();
    // One deadline for all of them; what is still running then is stopped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            abort.abort();
        }
    }
    let n = Counts::get(&counts.reconnects);
    json!({
        "reconnects": n,
        "reconnects_per_s": (n as f64 / elapsed).round(),
        "catch_up_ms": catchup.summary(),
        "missing": Counts::get(&counts.missing),
        "errors": counts.errors(),
    })
}
