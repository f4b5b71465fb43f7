//! The Redis relay: several nodes behind a balancer behave as one.
//!
//! Routing: each user has a channel `sb:u:{user}` and each watched user a channel
//! `sb:w:{user}`, and every node subscribes to `sb:all` and to `sb:members` (membership
//! changes: the thread ids every node's `roster` forgets). A node subscribes to a user's channel
//! while that user has a session on it (before the session's `hello`), so it receives only the
//! events of its own users. Publishing delivers to the local registry at once, then sends the
//! envelope's parts (`routing`) in a single pipeline: one per addressed user for a small
//! audience, one on `sb:all` for a large one, and one per watched user.
//!
//! Shared state, all of it rebuilt from the nodes if Redis loses it:
//! - `sb:node:{node}`: liveness, refreshed every second with a 4 s TTL.
//! - `sb:nodes`: the nodes; `sb:nu:{node}`: users with a session on a node.
//! - `sb:on:{user}`: the nodes a user has a session on (online = not empty).
//! - `sb:sess:{user}`: the user's sessions by opening time, for the cluster-wide cap.
//! - `sb:rate:{user}`: the user's send budget (GCRA), cluster-wide.
//!
//! When a node's liveness key expires, the first node to notice takes `sb:reap:{node}`,
//! removes the dead node from every set and reports users left with no session as offline.
//! Redis is never the store of record: when it is down, local delivery, commits and acks go
//! on; events for other nodes are dropped (clients fill seq gaps with `history`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use deadpool_redis::{Config as PoolConfig, Pool, PoolConfig as PoolSize, Runtime, Timeouts};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use redis::Script;
use tokio::sync::mpsc;

mod liveness;
mod members;
mod rate;
pub(crate) mod routing;
mod scripts;
mod sessions;

use crate::envelope::Envelope;
use crate::limits::RateLimiter;
use crate::metrics;
use crate::protocol::Ts;
use crate::registry::{DeliverAll, SessionRegistry};
use crate::relay::subscriber::{REDIS_TIMEOUT, RedisSubscriber, Subscription};
use crate::relay::{Relay, RelayError, Verdict};
use crate::relay::{Transition, tell};
use crate::roster::Roster;
use crate::stripes::Stripes;
use scripts::{Scripts, watch_channel};

/// How often a node refreshes its liveness and looks for dead nodes.
const TICK: Duration = Duration::from_secs(1);
/// Liveness TTL: a node silent this long is dead. With `TICK`, watchers learn of a dead
/// node's users going offline within about 5 s.
pub(crate) const NODE_TTL_MS: u64 = 4000;
/// How long one node holds the right to reap a dead one.
pub(crate) const REAP_LOCK_MS: u64 = 10_000;
/// Pooled connections for publishing and shared state.
const POOL_SIZE: usize = 16;
/// Per-user turns for opening and closing sessions.
const USER_STRIPES: usize = 256;
/// Ended watches waiting to be unsubscribed; past it the subscriber's hand-on waits.
const UNWATCHED_QUEUE: usize = 1024;

#[derive(Default)]
struct Local {
    /// Sessions on this node by user.
    sessions: HashMap<String, HashSet<String>>,
    /// Watch channels and how many local watchers each has (may dip below zero briefly when
    /// an unwatch overtakes its watch).
    watched: HashMap<String, i64>,
}

/// Relay and shared state through Redis.
pub struct RedisRelay {
    node_id: String,
    pool: Pool,
    registry: Addr<SessionRegistry>,
    subscriber: Addr<RedisSubscriber>,
    local: Mutex<Local>,
    up: AtomicBool,
    last_error: Mutex<String>,
    /// This node's own limiter, for checks Redis does not answer.
    fallback: Arc<RateLimiter>,
    rate_interval_ms: f64,
    rate_burst: u32,
    /// Send-rate checks waiting for their batch's round trip (`rate`).
    rate_checks: mpsc::Sender<rate::RateCheck>,
    max_sessions: usize,
    transitions: mpsc::Sender<Transition>,
    scripts: Scripts,
    /// Per-user turns for opening and closing sessions.
    turns: Stripes,
    /// Per-watched-user turns for subscribing and unsubscribing, so an unsubscribe cannot
    /// overtake the subscribe that follows it (and leave a watcher without events).
    watch_turns: Stripes,
    /// Users announced offline from this node's view alone while Redis was down.
    offline_while_down: Mutex<HashSet<String>>,
    /// When Redis last came back: peers get a liveness TTL to refresh before any reaping.
    recovered_at: Mutex<Option<Instant>>,
    /// Set by `leave`: the tick stops, so the node does not re-register on its way out.
    left: AtomicBool,
    /// Channels left while Redis was down, to unsubscribe once it is back.
    stale_channels: Mutex<HashSet<String>>,
    /// Set when this node's liveness key was found missing (Redis lost it, or we were silent
    /// past its TTL): the tick then re-registers everything.
    key_lost: AtomicBool,
    /// Whether `sb:all` is known subscribed (it is subscribed again on every recovery).
    broadcast_on: AtomicBool,
    /// This node's membership cache: trusted only while `sb:members` is known subscribed.
    roster: Arc<Roster>,
    /// Membership changes made here that the other nodes could not be told of yet.
    owed: Mutex<members::Owed>,
}

/// What the Redis relay needs to start.
pub struct RedisOptions {
    pub url: String,
    pub node_id: String,
    pub rate_per_s: u32,
    pub rate_burst: u32,
    pub max_sessions: usize,
    /// Pushed envelopes waiting for the registry (`RELAY_QUEUE`); past it they are dropped.
    pub queue: usize,
}

impl RedisRelay {
    /// Starts the relay, its subscriber and its liveness task. Redis need not be up yet.
    pub fn start(
        opts: RedisOptions,
        registry: Addr<SessionRegistry>,
        transitions: mpsc::Sender<Transition>,
        roster: Arc<Roster>,
    ) -> Result<Arc<RedisRelay>, RelayError> {
        let mut cfg = PoolConfig::from_url(opts.url.clone());
        cfg.pool = Some(PoolSize {
            max_size: POOL_SIZE,
            timeouts: Timeouts {
                wait: Some(REDIS_TIMEOUT),
                create: Some(REDIS_TIMEOUT),
                recycle: Some(REDIS_TIMEOUT),
            },
            ..PoolSize::default()
        });
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| RelayError::Unavailable(e.to_string()))?;
        // Watches that an unwatch from another node ended, for this relay to unsubscribe.
        let (unwatched, mut ended) = mpsc::channel::<String>(UNWATCHED_QUEUE);
        let subscriber = RedisSubscriber::start(
            &opts.url,
            opts.node_id.clone(),
            opts.queue,
            registry.clone(),
            unwatched,
            roster.clone(),
        )?;
        let (rate_checks, rate_queue) = mpsc::channel(rate::RATE_QUEUE);
        let relay = Arc::new(RedisRelay {
            node_id: opts.node_id,
            pool,
            registry,
            subscriber,
            local: Mutex::new(Local::default()),
            // Assume up until the first tick says otherwise, so start-up does not log an
            // outage that never happened.
            up: AtomicBool::new(true),
            last_error: Mutex::new(String::new()),
            fallback: Arc::new(RateLimiter::new(opts.rate_per_s, opts.rate_burst)),
            rate_interval_ms: 1000.0 / f64::from(opts.rate_per_s.max(1)),
            rate_burst: opts.rate_burst.max(1),
            rate_checks,
            max_sessions: opts.max_sessions,
            transitions,
            scripts: Scripts::new(),
            turns: Stripes::new(USER_STRIPES),
            watch_turns: Stripes::new(USER_STRIPES),
            offline_while_down: Mutex::new(HashSet::new()),
            recovered_at: Mutex::new(None),
            left: AtomicBool::new(false),
            stale_channels: Mutex::new(HashSet::new()),
            key_lost: AtomicBool::new(false),
            broadcast_on: AtomicBool::new(false),
            roster,
            owed: Mutex::new(members::Owed::default()),
        });
        tokio::spawn(rate::check_rates(Arc::downgrade(&relay), rate_queue));
        let refresher = Arc::downgrade(&relay);
        tokio::spawn(async move {
            loop {
                let Some(r) = refresher.upgrade() else { return };
                r.refresh_liveness().await;
                drop(r);
                tokio::time::sleep(TICK).await;
            }
        });
        let unsubscriber = Arc::downgrade(&relay);
        tokio::spawn(async move {
            while let Some(user) = ended.recv().await {
                let Some(r) = unsubscriber.upgrade() else {
                    return;
                };
                r.watch(&user, false).await;
            }
        });
        let ticker = Arc::downgrade(&relay);
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let Some(r) = ticker.upgrade() else { return };
                r.tick(first).await;
                first = false;
                drop(r);
                tokio::time::sleep(TICK).await;
            }
        });
        Ok(relay)
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// Records an outage; logs only the first failure of each outage.
    fn down(&self, e: &RelayError) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e.to_string();
        // Other nodes' membership changes may not reach this node now.
        self.roster.distrust();
        if self.up.swap(false, Ordering::SeqCst) {
            log::error!(
                "redis unavailable ({e}): delivering locally only until it is back; /readyz answers 503"
            );
        }
    }

    /// A pooled connection while Redis is up; `None` (without waiting) while it is down.
    async fn up_conn(&self) -> Option<deadpool_redis::Connection> {
        if !self.is_up() {
            return None;
        }
        match self.conn().await {
            Ok(c) => Some(c),
            Err(e) => {
                self.down(&e);
                None
            }
        }
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, RelayError> {
        self.pool
            .get()
            .await
            .map_err(|e| RelayError::Unavailable(e.to_string()))
    }

    /// Runs one Redis operation with the command timeout; failures mark Redis down.
    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, RelayError> {
        let r = match tokio::time::timeout(REDIS_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RelayError::Unavailable(e.to_string())),
            Err(_) => Err(RelayError::Unavailable("timed out".into())),
        };
        if let Err(e) = &r {
            self.down(e);
        }
        r
    }

    /// Runs ARRIVE or LEAVE for `user` on this node: whether it was the user's first (or
    /// last) node; `None` when Redis did not answer.
    async fn presence_edge(
        &self,
        script: &Script,
        user: &str,
        conn: &mut deadpool_redis::Connection,
    ) -> Option<bool> {
        self.timed(
            script
                .key(format!("sb:on:{user}"))
                .key(format!("sb:nu:{}", self.node_id))
                .arg(&self.node_id)
                .arg(user)
                .invoke_async::<i64>(conn),
        )
        .await
        .ok()
        .map(|edge| edge == 1)
    }

    /// (Un)subscribes the subscriber connection. Skipped while Redis is down: recovery
    /// subscribes again to every channel this node needs.
    async fn subscribe(&self, channel: String, on: bool) {
        if !self.is_up() {
            // The connection manager will subscribe again to what it had, so an unsubscribe
            // skipped now is remembered and done on recovery.
            let mut stale = self
                .stale_channels
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if on {
                stale.remove(&channel);
            } else {
                stale.insert(channel);
            }
            return;
        }
        let r = self.ask_subscriber(Subscription { channel, on }).await;
        if let Err(e) = r {
            self.down(&e);
        }
    }

    /// Subscribes to the channel of large-audience envelopes (`routing::ALL_CHANNEL`), at the
    /// first session and on every recovery: a node with sessions must never miss one.
    async fn subscribe_broadcast(&self) {
        self.subscribe(routing::ALL_CHANNEL.to_string(), true).await;
        self.broadcast_on.store(self.is_up(), Ordering::SeqCst);
    }

    /// Sends the subscriber a command, bounded by the Redis timeout.
    async fn ask_subscriber<M>(&self, msg: M) -> Result<(), RelayError>
    where
        M: actix::Message<Result = Result<(), RelayError>> + Send + 'static,
        RedisSubscriber: actix::Handler<M>,
    {
        match tokio::time::timeout(REDIS_TIMEOUT, self.subscriber.send(msg)).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(RelayError::RegistryGone),
            Err(_) => Err(RelayError::Unavailable("subscriber timed out".into())),
        }
    }

    async fn tell(&self, t: Transition) {
        tell(&self.transitions, t).await;
    }
}

impl Relay for RedisRelay {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), RelayError>> {
        self.publish_all(vec![envelope])
    }

    fn publish_all(&self, envelopes: Vec<Envelope>) -> BoxFuture<'_, Result<(), RelayError>> {
        async move {
            let mut pipe = redis::pipe();
            // Envelopes with a copy for other nodes: counted as dropped if it does not go out.
            let mut crossing = 0;
            let mut here = Vec::with_capacity(envelopes.len());
            for envelope in envelopes {
                metrics::relay_published();
                let parts = routing::parts(&envelope);
                crossing += u64::from(!parts.is_empty());
                for (channel, json) in parts {
                    pipe.cmd("PUBLISH").arg(channel).arg(json).ignore();
                }
                here.push(Arc::new(envelope));
            }
            let ended = self
                .registry
                .send(DeliverAll { envelopes: here })
                .await
                .map_err(|_| RelayError::RegistryGone)?;
            for user in ended {
                self.watch(&user, false).await;
            }
            if crossing == 0 {
                return Ok(());
            }
            if !self.is_up() {
                metrics::event_dropped(metrics::DropReason::RelayDown, crossing);
                return Ok(());
            }
            let started = Instant::now();
            let mut conn = match self.conn().await {
                Ok(c) => c,
                Err(e) => {
                    self.down(&e);
                    metrics::event_dropped(metrics::DropReason::RelayDown, crossing);
                    return Ok(());
                }
            };
            // Local delivery already happened: a failure here only loses the cross-node copy,
            // and the tick notices the outage.
            if self.timed(pipe.query_async::<()>(&mut conn)).await.is_err() {
                metrics::event_dropped(metrics::DropReason::RelayDown, crossing);
            }
            metrics::relay_publish(started.elapsed());
            Ok(())
        }
        .boxed()
    }

    fn name(&self) -> &'static str {
        "redis"
    }

    fn health(&self) -> BoxFuture<'_, Result<(), RelayError>> {
        async move {
            if self.is_up() {
                Ok(())
            } else {
                let e = self
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                Err(RelayError::Unavailable(format!("redis: {e}")))
            }
        }
        .boxed()
    }

    fn session_opened<'a>(
        &'a self,
        user: &'a str,
        session: &'a str,
        name: Option<String>,
    ) -> BoxFuture<'a, ()> {
        self.open_session(user, session, name).boxed()
    }

    fn session_closed<'a>(&'a self, user: &'a str, session: &'a str) -> BoxFuture<'a, ()> {
        self.close_session(user, session).boxed()
    }

    fn local_sessions(&self) -> usize {
        let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
        local.sessions.values().map(HashSet::len).sum()
    }

    fn watch<'a>(&'a self, user: &'a str, on: bool) -> BoxFuture<'a, ()> {
        async move {
            let _turn = self.watch_turns.lock(user).await;
            // Signed: an "off" that overtakes its "on" (a session closing while its worker
            // still subscribes) nets out to no subscription instead of a stuck one.
            let change = {
                let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                let n = local.watched.entry(user.to_string()).or_insert(0);
                let before = *n;
                *n += if on { 1 } else { -1 };
                let after = *n;
                if after == 0 {
                    local.watched.remove(user);
                }
                (before <= 0 && after > 0) || (before > 0 && after <= 0)
            };
            if change {
                let needed = self
                    .local
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .watched
                    .get(user)
                    .is_some_and(|n| *n > 0);
                self.subscribe(watch_channel(user), needed).await;
            }
        }
        .boxed()
    }

    fn online<'a>(&'a self, users: &'a [String]) -> BoxFuture<'a, Vec<bool>> {
        async move {
            if self.is_up() {
                if let Ok(mut conn) = self.conn().await {
                    let mut pipe = redis::pipe();
                    for u in users {
                        pipe.cmd("SCARD").arg(format!("sb:on:{u}"));
                    }
                    if let Ok(counts) = self.timed(pipe.query_async::<Vec<i64>>(&mut conn)).await {
                        return counts.into_iter().map(|n| n > 0).collect();
                    }
                }
            }
            // Without Redis this node only knows its own sessions.
            crate::registry::online_here(&self.registry, users).await
        }
        .boxed()
    }

    fn take_send(&self, user: &str) -> Verdict {
        if !self.is_up() {
            return Verdict::Now(self.fallback.check(user));
        }
        let (asked, queued) = self.ask_rate(user);
        let (fallback, user) = (self.fallback.clone(), user.to_string());
        let verdict = async move {
            match asked.await {
                Some(ms) if ms <= 0 => Ok(()),
                Some(ms) => Err(Duration::from_millis(u64::try_from(ms).unwrap_or(1))),
                None => fallback.check(&user),
            }
        }
        .boxed();
        if queued {
            Verdict::Later(verdict)
        } else {
            Verdict::Backlogged(verdict)
        }
    }

    fn members_changed<'a>(&'a self, thread_id: &'a str) -> BoxFuture<'a, ()> {
        self.tell_members_changed(thread_id).boxed()
    }

    fn leave(&self) -> BoxFuture<'_, ()> {
        async move {
            self.left.store(true, Ordering::SeqCst);
            let Some(mut conn) = self.up_conn().await else {
                return;
            };
            // Sessions the drain did not see close (grace ran out) are withdrawn too, so no
            // user is left online with no node to reap them.
            let listed: Vec<String> = self
                .timed(
                    redis::cmd("SMEMBERS")
                        .arg(format!("sb:nu:{}", self.node_id))
                        .query_async(&mut conn),
                )
                .await
                .unwrap_or_default();
            for user in &listed {
                if self.withdraw(&mut conn, user).await {
                    self.tell(Transition::Offline {
                        user_id: user.clone(),
                        at: Ts::now(),
                    })
                    .await;
                }
            }
            let mut pipe = redis::pipe();
            pipe.cmd("DEL")
                .arg(format!("sb:node:{}", self.node_id))
                .ignore();
            pipe.cmd("DEL")
                .arg(format!("sb:nu:{}", self.node_id))
                .ignore();
            pipe.cmd("SREM").arg("sb:nodes").arg(&self.node_id).ignore();
            if self.timed(pipe.query_async::<()>(&mut conn)).await.is_ok() {
                log::info!("left the cluster: liveness and presence withdrawn");
            }
        }
        .boxed()
    }
}
