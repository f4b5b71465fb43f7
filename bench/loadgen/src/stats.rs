//! What a run measures: latency samples, counts by kind, and the gateways' own RSS and CPU
//! read from /proc.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

/// Latency samples in microseconds. A run is bounded in time, so is this.
#[derive(Default)]
pub struct Latencies(Mutex<Vec<u64>>);

impl Latencies {
    pub fn add(&self, since: Instant) {
        self.add_us(since.elapsed().as_micros() as u64);
    }

    pub fn add_us(&self, us: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(us);
    }

    pub fn extend(&self, us: &[u64]) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(us);
    }

    /// p50/p90/p99/max in milliseconds.
    pub fn summary(&self) -> Value {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if v.is_empty() {
            return Value::Null;
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64 / 1000.0;
        json!({
            "n": v.len(),
            "p50": at(0.50), "p90": at(0.90), "p99": at(0.99),
            "max": *v.last().unwrap_or(&0) as f64 / 1000.0,
        })
    }
}

/// Counts shared by every task of a run.
#[derive(Default)]
pub struct Counts {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub missing: AtomicU64,
    pub reconnects: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Counts {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// One error, by its contract code (or a local kind such as `closed`).
    pub fn error(&self, code: &str) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code.to_string())
            .or_default() += 1;
    }

    pub fn errors(&self) -> Value {
        json!(*self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A gateway process's resident memory (KiB) and CPU time used (ms), from /proc.
pub fn proc_usage(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces: utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some((rss, ticks * 10))
}

/// The whole machine's CPU time since boot, in ticks: (busy, total) over every core, from
/// the first line of /proc/stat (idle and iowait count as not busy).
pub fn machine_ticks() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect();
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4)?;
    Some((total - idle, total))
}

/// Nanoseconds a process's threads have spent runnable but waiting for a core, summed over
/// its threads (`/proc/<pid>/task/*/schedstat`, second field): on a saturated box this is
/// the part of a latency that is queueing for the CPU, not work.
pub fn runqueue_wait_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0;
    for t in tasks.flatten() {
        // A thread that exits between the listing and the read counts as nothing.
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            sum += s
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(sum)
}

/// Nanoseconds every thread on the machine has spent waiting for a core, summed over the
/// processes in /proc (this kernel has no `/proc/schedstat`). A thread that exits between
/// two readings takes its count with it, so over a run this is a lower bound.
pub fn machine_runqueue_wait_ns() -> Option<u64> {
    let procs = std::fs::read_dir("/proc").ok()?;
    let pids = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    Some(pids.filter_map(runqueue_wait_ns).sum())
}

/// Kernel memory held by TCP sockets, in KiB (`/proc/net/sockstat`, pages of 4 KiB).
pub fn tcp_kernel_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = s.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == "mem" {
            return it.next()?.parse::<u64>().ok().map(|p| p * 4);
        }
    }
    None
}
