//! Prometheus metrics: the family names of the contract (PROTOCOL.md, "Operations"), one small
//! function per event that counts it where it happens, and the exporter that renders them for
//! `GET /metrics`. docs/operations.md explains each family with an example alert.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

mod allocator;
mod latency;
use latency::Latency;

/// Open sessions, by transport.
pub const CONNECTIONS: &str = "switchboard_connections";
/// Messages committed to the database.
pub const MESSAGES_STORED: &str = "switchboard_messages_stored_total";
/// Transactions that stored a batch of messages (group commit); messages stored divided by
/// this is the mean batch.
pub const COMMIT_BATCHES: &str = "switchboard_commit_batches_total";
/// Frames of server events queued for a session.
pub const EVENTS_DELIVERED: &str = "switchboard_events_delivered_total";
/// Frames of server events that did not reach a session, by reason.
pub const EVENTS_DROPPED: &str = "switchboard_events_dropped_total";
/// From a `send` read off the socket (or a REST send arriving) to its `ack` queued.
pub const SEND_ACK_SECONDS: &str = "switchboard_send_ack_seconds";
/// One store call: waiting for a connection, the statements, and the commit.
pub const DB_QUERY_SECONDS: &str = "switchboard_db_query_seconds";
/// One pipeline of PUBLISH commands to Redis (the cross-node copies of a commit's events).
pub const RELAY_PUBLISH_SECONDS: &str = "switchboard_relay_publish_seconds";
/// Lookups of a thread's members for addressing an event, by result: `hit` (the membership
/// cache answered) or `miss` (the database did).
pub const MEMBERS_CACHE: &str = "switchboard_members_cache_total";
/// Database connections the pool opened; past the pool's size, each is a replacement.
pub const DB_CONNECTIONS_OPENED: &str = "switchboard_db_connections_opened_total";
/// Database connections the pool holds now.
pub const DB_POOL_CONNECTIONS: &str = "switchboard_db_pool_connections";
/// Envelopes published through the relay.
pub const RELAY_PUBLISHED: &str = "switchboard_relay_published_total";
/// Envelopes received from other nodes.
pub const RELAY_RECEIVED: &str = "switchboard_relay_received_total";
/// Times the node saw Redis come back after an outage.
pub const REDIS_RECONNECTS: &str = "switchboard_redis_reconnects_total";
/// Requests and frames refused with `rate_limited`.
pub const RATE_LIMITED: &str = "switchboard_rate_limited_total";
/// Notifications stored, by whether they were pushed live or held back by preferences.
pub const NOTIFICATIONS: &str = "switchboard_notifications_total";
/// Webhook deliveries, by outcome.
pub const WEBHOOKS: &str = "switchboard_webhooks_total";

/// From a send arriving to its ack queued.
static SEND_ACK: Latency = Latency::new(
    SEND_ACK_SECONDS,
    "From a send arriving to its ack queued (the commit included), in seconds.",
);
/// One store call.
static DB_QUERY: Latency = Latency::new(DB_QUERY_SECONDS, "One store call, in seconds.");
/// One Redis publish pipeline.
static RELAY_PUBLISH: Latency = Latency::new(
    RELAY_PUBLISH_SECONDS,
    "One pipeline of PUBLISH commands to Redis (a connection taken from the pool included), in seconds.",
);

/// The transport a session runs over (label `transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ws,
    Sse,
}

impl Transport {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// Why an event did not reach a session (label `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A typing or presence frame shed at a session that is behind (lossy by design).
    Shed,
    /// A durable frame that overflowed a session's outbox; the session is closed with 4008.
    SlowSession,
    /// The session was already closing.
    Closing,
    /// The Redis subscriber's queue was full: the node could not keep up with other nodes.
    RelayQueueFull,
    /// An envelope from another node that could not be read.
    BadEnvelope,
    /// An envelope whose copy for other nodes was not published: Redis was down or the
    /// publish failed (local sessions still got it).
    RelayDown,
}

impl DropReason {
    const ALL: [DropReason; 6] = [
        DropReason::Shed,
        DropReason::SlowSession,
        DropReason::Closing,
        DropReason::RelayQueueFull,
        DropReason::BadEnvelope,
        DropReason::RelayDown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Shed => "shed",
            DropReason::SlowSession => "slow_session",
            DropReason::Closing => "closing",
            DropReason::RelayQueueFull => "relay_queue_full",
            DropReason::BadEnvelope => "bad_envelope",
            DropReason::RelayDown => "relay_down",
        }
    }
}

/// The exporter's handle: renders the text format.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the process-wide recorder and describes every family, so each shows (at zero,
    /// histograms empty) from the first scrape. A second call in one process gets a handle that renders nothing.
    pub fn install() -> Metrics {
        let handle = match PrometheusBuilder::new().install_recorder() {
            Ok(h) => h,
            Err(e) => {
                log::warn!("metrics: {e}; /metrics will be empty");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        describe();
        Metrics { handle }
    }

    /// The Prometheus text exposition: the exporter's counters and gauges, the latency
    /// histograms, then the allocator's gauges.
    pub fn render(&self) -> String {
        let mut out = self.handle.render();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        SEND_ACK.render(&mut out);
        DB_QUERY.render(&mut out);
        RELAY_PUBLISH.render(&mut out);
        allocator::render(&mut out);
        out
    }
}

fn describe() {
    describe_gauge!(
        CONNECTIONS,
        "Open sessions on this node, by transport (ws, sse)."
    );
    describe_counter!(MESSAGES_STORED, "Messages committed to the database.");
    describe_counter!(
        COMMIT_BATCHES,
        "Transactions that stored a batch of messages (group commit)."
    );
    describe_counter!(
        EVENTS_DELIVERED,
        "Server event frames queued for a session."
    );
    describe_counter!(
        EVENTS_DROPPED,
        "Server event frames that did not reach a session, by reason."
    );
    describe_counter!(
        DB_CONNECTIONS_OPENED,
        "Database connections opened; more than the pool holds means some were replaced."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database connections the pool holds (opened on demand, up to its size)."
    );
    describe_counter!(
        MEMBERS_CACHE,
        "Member lookups for addressing events, by result (hit: the cache; miss: the database)."
    );
    describe_counter!(RELAY_PUBLISHED, "Envelopes published through the relay.");
    describe_counter!(RELAY_RECEIVED, "Envelopes received from other nodes.");
    describe_counter!(REDIS_RECONNECTS, "Times Redis came back after an outage.");
    describe_counter!(
        RATE_LIMITED,
        "Requests and frames refused with rate_limited."
    );
    describe_counter!(
        NOTIFICATIONS,
        "Notifications stored, by outcome (pushed, muted)."
    );
    describe_counter!(
        WEBHOOKS,
        "Webhook deliveries, by outcome (sent, retried, dropped)."
    );
    // Registered now, so the histograms show (empty) before their first sample.
    for t in [Transport::Ws, Transport::Sse] {
        gauge!(CONNECTIONS, "transport" => t.as_str()).set(0.0);
    }
    for r in DropReason::ALL {
        counter!(EVENTS_DROPPED, "reason" => r.as_str()).absolute(0);
    }
    for o in ["pushed", "muted"] {
        counter!(NOTIFICATIONS, "outcome" => o).absolute(0);
    }
    for r in ["hit", "miss"] {
        counter!(MEMBERS_CACHE, "result" => r).absolute(0);
    }
    for o in ["sent", "retried", "dropped"] {
        counter!(WEBHOOKS, "outcome" => o).absolute(0);
    }
    for c in [
        MESSAGES_STORED,
        COMMIT_BATCHES,
        DB_CONNECTIONS_OPENED,
        EVENTS_DELIVERED,
        RELAY_PUBLISHED,
        RELAY_RECEIVED,
        REDIS_RECONNECTS,
        RATE_LIMITED,
    ] {
        counter!(c).absolute(0);
    }
}

/// The pool opened a database connection.
pub fn db_connection_opened() {
    counter!(DB_CONNECTIONS_OPENED).increment(1);
}

/// The database connections the pool holds, read before each scrape.
pub fn db_pool_connections(n: usize) {
    gauge!(DB_POOL_CONNECTIONS).set(n as f64);
}

/// A session opened.
pub fn session_opened(t: Transport) {
    gauge!(CONNECTIONS, "transport" => t.as_str()).increment(1.0);
}

/// A session closed.
pub fn session_closed(t: Transport) {
    gauge!(CONNECTIONS, "transport" => t.as_str()).decrement(1.0);
}

/// A counter called for every message, looked up once: `counter!` hashes its name into the
/// recorder's registry on each call, a quarter of a send's cost in metrics
/// (docs/performance.md, "Instructions per message"). The recorder is installed before the
/// first message (`Metrics::install` at start-up), so the handle is the real one.
macro_rules! hot_counter {
    ($name:expr) => {{
        static HANDLE: OnceLock<Counter> = OnceLock::new();
        HANDLE.get_or_init(|| counter!($name))
    }};
}

/// A batch of messages goes to the store in one transaction.
pub fn commit_batch() {
    hot_counter!(COMMIT_BATCHES).increment(1);
}

/// A message was committed.
pub fn message_stored() {
    hot_counter!(MESSAGES_STORED).increment(1);
}

/// `n` event frames were queued for sessions.
pub fn events_delivered(n: u64) {
    if n > 0 {
        hot_counter!(EVENTS_DELIVERED).increment(n);
    }
}

/// An event frame did not reach a session.
pub fn event_dropped(reason: DropReason, n: u64) {
    if n > 0 {
        counter!(EVENTS_DROPPED, "reason" => reason.as_str()).increment(n);
    }
}

/// A send was acknowledged `took` after it arrived.
pub fn send_acked(took: Duration) {
    SEND_ACK.record(took);
}

/// A store call took `took`.
pub fn db_query(took: Duration) {
    DB_QUERY.record(took);
}

/// A Redis publish pipeline took `took`.
pub fn relay_publish(took: Duration) {
    RELAY_PUBLISH.record(took);
}

/// A thread's members were looked up for an event: `hit` when the cache had them.
pub fn members_lookup(hit: bool) {
    static HIT: OnceLock<Counter> = OnceLock::new();
    static MISS: OnceLock<Counter> = OnceLock::new();
    let c = if hit {
        HIT.get_or_init(|| counter!(MEMBERS_CACHE, "result" => "hit"))
    } else {
        MISS.get_or_init(|| counter!(MEMBERS_CACHE, "result" => "miss"))
    };
    c.increment(1);
}

/// An envelope was published through the relay.
pub fn relay_published() {
    hot_counter!(RELAY_PUBLISHED).increment(1);
}

/// An envelope arrived from another node.
pub fn relay_received() {
    hot_counter!(RELAY_RECEIVED).increment(1);
}

/// Redis came back after an outage.
pub fn redis_reconnected() {
    counter!(REDIS_RECONNECTS).increment(1);
}

/// A request or frame was refused with `rate_limited`.
pub fn rate_limited() {
    counter!(RATE_LIMITED).increment(1);
}

/// A webhook delivery ended; `outcome` is `sent`, `retried` or `dropped`.
pub fn webhook(outcome: &'static str) {
    counter!(WEBHOOKS, "outcome" => outcome).increment(1);
}

/// A notification was stored; `outcome` is `pushed` or `muted`.
pub fn notification(outcome: &'static str) {
    counter!(NOTIFICATIONS, "outcome" => outcome).increment(1);
}

/// `n` webhook deliveries were given up past `WEBHOOK_MAX_AGE_S` without being tried again.
pub fn webhooks_dropped(n: u64) {
    counter!(WEBHOOKS, "outcome" => "dropped").increment(n);
}
