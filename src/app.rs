//! Wiring: builds the shared state (store, relay, registry, auth, limits), starts the actors
//! and the HTTP server on a listener, and drains on SIGTERM.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::{App, HttpServer, web};
use tokio::sync::mpsc;

use crate::auth::Auth;
use crate::config::Config;
use crate::limits::RateLimiter;
use crate::presence::Transition;
use crate::registry::{Drain, SessionCount, SessionRegistry};
use crate::relay::Relay;
use crate::relay::memory::MemoryRelay;
use crate::relay::redis::{RedisOptions, RedisRelay};
use crate::service::typing::Typing;
use crate::store::{Store, migrate};
use crate::stripes::Stripes;
use crate::{presence, shutdown};

/// Per-thread ordering locks; more stripes, fewer unrelated threads waiting on each other.
const SEQUENCER_STRIPES: usize = 1024;
/// Of the shutdown grace, what is kept for leaving the cluster, announcing presence and
/// stopping the server after the sockets are closed.
const SHUTDOWN_TAIL: Duration = Duration::from_millis(2500);
/// Connections one worker accepts; the default 25k is low for a gateway (STACK.md).
const MAX_CONNECTIONS_PER_WORKER: usize = 100_000;

/// What every handler, actor and service shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub relay: Arc<dyn Relay>,
    pub registry: Addr<SessionRegistry>,
    pub auth: Auth,
    pub typing: Arc<Typing>,
    /// Per-thread turns from seq assignment to publish.
    pub sequencer: Arc<Stripes>,
    /// Set on SIGTERM: `/readyz` turns 503 so balancers stop sending new clients here.
    pub draining: Arc<AtomicBool>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("JWT key: {0}")]
    Auth(String),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("REDIS_URL: {0}")]
    Relay(#[from] crate::relay::RelayError),
}

/// Migrates, builds the state and serves on `listener` until SIGTERM/SIGINT.
pub async fn run(config: Config, listener: TcpListener) -> Result<(), StartError> {
    if config.uses_dev_secret() {
        log::warn!(
            "!!! JWT_SECRET is not set: tokens are checked against the built-in DEVELOPMENT \
             secret, which anyone can read. Set JWT_SECRET or JWT_PUBLIC_KEY in production. !!!"
        );
    }
    let applied = migrate::run(&config.database_url).await?;
    for m in &applied {
        log::info!("migration applied: {m}");
    }
    let store = Store::connect(&config.database_url).await?;
    let auth = Auth::new(&config).map_err(StartError::Auth)?;
    let (tx, rx) = mpsc::channel(presence::TRANSITION_QUEUE);
    let registry =
        SessionRegistry::new(config.max_sessions_per_user, config.redis_url.is_some()).start();
    let relay: Arc<dyn Relay> = match &config.redis_url {
        None => Arc::new(MemoryRelay::new(
            registry.clone(),
            RateLimiter::new(config.rate_per_s, config.rate_burst),
            tx.clone(),
        )),
        Some(url) => RedisRelay::start(
            RedisOptions {
                url: url.clone(),
                node_id: config.node_id.clone(),
                rate_per_s: config.rate_per_s,
                rate_burst: config.rate_burst,
                max_sessions: config.max_sessions_per_user,
            },
            registry.clone(),
            tx.clone(),
        )?,
    };
    let state = AppState {
        typing: Arc::new(Typing::default()),
        sequencer: Arc::new(Stripes::new(SEQUENCER_STRIPES)),
        draining: Arc::new(AtomicBool::new(false)),
        config: Arc::new(config),
        store,
        relay,
        registry: registry.clone(),
        auth,
    };
    tokio::spawn(presence::run(state.clone(), rx));

    let addr = listener.local_addr()?;
    let grace = state.config.shutdown_grace;
    let max_json = state.config.max_frame_bytes;
    let data = web::Data::new(state.clone());
    let auth = web::Data::new(state.auth.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(auth.clone())
            .configure(|cfg| crate::api::configure(cfg, max_json))
    })
    .disable_signals()
    .max_connections(MAX_CONNECTIONS_PER_WORKER)
    // The drain below already waited for sockets; this only bounds in-flight requests.
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    log::info!(
        "switchboard listening on http://{addr} (node {}, {} store, {} relay)",
        state.config.node_id,
        if state.store.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        state.relay.name()
    );
    let handle = server.handle();
    let draining = state.draining.clone();
    let relay = state.relay.clone();
    tokio::spawn(async move {
        shutdown::signalled().await;
        // Everything below fits in SHUTDOWN_GRACE_S: sockets get what is left after the
        // steps that follow them are budgeted.
        let deadline = tokio::time::Instant::now() + grace;
        draining.store(true, Ordering::SeqCst);
        // Stop accepting first, so no socket opens behind the drain.
        handle.pause().await;
        let for_sockets = grace.saturating_sub(SHUTDOWN_TAIL);
        drain(&registry, relay.as_ref(), for_sockets).await;
        // Withdraw this node (and anyone whose close did not finish) from the cluster now,
        // not when the liveness key expires; then let presence announce the offlines.
        let _ = tokio::time::timeout(Duration::from_secs(1), relay.leave()).await;
        let until = deadline
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(deadline);
        let (done, flushed) = tokio::sync::oneshot::channel();
        // Bounded both ways: a full presence queue must not hold the exit past the grace.
        if let Ok(Ok(())) = tokio::time::timeout_at(until, tx.send(Transition::Flush(done))).await {
            let _ = tokio::time::timeout_at(until, flushed).await;
        }
        handle.stop(true).await;
    });
    server.await?;
    log::info!("switchboard stopped");
    Ok(())
}

/// Closes every session with 1001 and waits (up to `grace`) for them to go.
async fn drain(registry: &Addr<SessionRegistry>, relay: &dyn Relay, grace: Duration) {
    let open = registry.send(Drain).await.unwrap_or(0);
    log::info!("draining: closing {open} session(s) with 1001");
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        // Gone from the registry, and from the relay (whose answer says who went offline).
        if registry.send(SessionCount).await.unwrap_or(0) == 0 && relay.local_sessions() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
