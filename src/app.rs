//! Wiring only: migrates, builds the shared context (store, relay, registry, auth, metrics),
//! starts the actors, the presence task and the HTTP server on a listener, and hands SIGTERM
//! to `shutdown`.

use std::net::TcpListener;
use std::sync::Arc;

use actix::Actor;
use actix_web::{App, HttpServer, web};
use tokio::sync::mpsc;

use crate::auth::{Auth, KeyError};
use crate::config::Config;
use crate::context::{AppContext, Parts};
use crate::limits::RateLimiter;
use crate::metrics::Metrics;
use crate::registry::SessionRegistry;
use crate::relay::memory::MemoryRelay;
use crate::relay::redis::{RedisOptions, RedisRelay};
use crate::relay::{Relay, RelayError, TRANSITION_QUEUE, Transition};
use crate::roster::Roster;
use crate::service::{idempotency, presence, webhooks};
use crate::shutdown;
use crate::store::{Store, StoreError, migrate};

/// Connections one worker accepts; the default 25k is low for a gateway (STACK.md).
const MAX_CONNECTIONS_PER_WORKER: usize = 100_000;
/// The membership cache's budget, in bytes of member ids: some twenty thousand 10-member
/// groups with UUID ids, or two hundred full ones.
const ROSTER_BYTES: usize = 16 << 20;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "DATABASE_URL: {url}: {source}{cause}; check that the database runs and the URL is right"
    )]
    Store {
        url: String,
        source: StoreError,
        /// The connection's own cause (refused, timed out, bad password...), when known.
        cause: String,
    },
    #[error("JWT key: {0}")]
    Auth(#[from] KeyError),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("REDIS_URL: {0}")]
    Relay(#[from] RelayError),
}

/// A start-up database error with the connection's own cause, which the pool's error lacks.
async fn database_error(config: &Config, source: StoreError) -> StartError {
    let cause =
        crate::store::diagnose::explain_unreachable(&config.database_url, config.db_timeout)
            .await
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
    StartError::Store {
        url: config.database_url.to_string(),
        source,
        cause,
    }
}

/// Migrates and builds the node without serving it: the context, the relay and its actors,
/// and the background tasks (presence, sweeps, webhooks). Needs a running actix system.
/// Returns the context and the presence transitions' sender, for the drain.
pub async fn start(config: Config) -> Result<(AppContext, mpsc::Sender<Transition>), StartError> {
    if config.uses_dev_secret() {
        log::warn!(
            "!!! JWT_SECRET is not set: tokens are checked against the built-in DEVELOPMENT \
             secret, which anyone can read. Set JWT_SECRET or JWT_PUBLIC_KEY in production. !!!"
        );
    }
    if config.server_api_key.is_none() {
        log::info!("SERVER_API_KEY is not set: the server API (/api/v1/server) is off");
    }
    let metrics = Metrics::install();
    let lock_wait = config.db_timeout * migrate::LOCK_WAITS;
    let applied = match migrate::run(&config.database_url, lock_wait).await {
        Ok(applied) => applied,
        Err(e) => return Err(database_error(&config, e).await),
    };
    for m in &applied {
        log::info!("migration applied: {m}");
    }
    let store = match Store::connect(&config.database_url, config.db_timeout).await {
        Ok(store) => store,
        Err(e) => return Err(database_error(&config, e).await),
    };
    let auth = Auth::new(&config)?;
    let (transitions, rx) = mpsc::channel(TRANSITION_QUEUE);
    let registry =
        SessionRegistry::new(config.max_sessions_per_user, config.redis_url.is_some()).start();
    // One node alone sees every membership change; with Redis, the relay trusts the cache
    // once it carries the other nodes' changes.
    let roster = Arc::new(Roster::new(ROSTER_BYTES, config.redis_url.is_none()));
    let relay: Arc<dyn Relay> = match &config.redis_url {
        None => Arc::new(MemoryRelay::new(
            registry.clone(),
            RateLimiter::new(config.rate_per_s, config.rate_burst),
            transitions.clone(),
        )),
        Some(url) => RedisRelay::start(
            RedisOptions {
                url: url.clone(),
                node_id: config.node_id.clone(),
                rate_per_s: config.rate_per_s,
                rate_burst: config.rate_burst,
                max_sessions: config.max_sessions_per_user,
                queue: config.relay_queue,
            },
            registry.clone(),
            transitions.clone(),
            roster.clone(),
        )?,
    };
    let app = AppContext::new(Parts {
        config,
        store,
        relay,
        registry,
        auth,
        metrics,
        roster,
    })?;
    tokio::spawn(presence::run(app.clone(), rx));
    tokio::spawn(idempotency::sweep_forever(app.clone()));
    tokio::spawn(webhooks::send_forever(app.clone()));
    tokio::spawn(webhooks::expire_forever(app.clone()));
    Ok((app, transitions))
}

/// Migrates, builds the context and serves on `listener` until SIGTERM/SIGINT.
pub async fn run(config: Config, listener: TcpListener) -> Result<(), StartError> {
    let (app, transitions) = start(config).await?;
    let addr = listener.local_addr()?;
    let max_json = app.config().max_frame_bytes;
    let workers = app.config().workers;
    let data = web::Data::new(app.clone());
    let auth = web::Data::new(app.auth().clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(auth.clone())
            .wrap(actix_web::middleware::from_fn(crate::api::cors::cors))
            .configure(|cfg| crate::api::configure(cfg, max_json))
    })
    .disable_signals()
    .workers(workers)
    .max_connections(MAX_CONNECTIONS_PER_WORKER)
    // A client that closes its side is gone: end its response (an SSE stream) at once rather
    // than at the next write.
    .h1_allow_half_closed(false)
    // Flush every PIECE_BYTES, so a socket's write buffer keeps its first 8 KiB for life
    // (session/pieces.rs says why).
    .h1_write_buffer_size(crate::session::pieces::PIECE_BYTES)
    // A frame longer than a piece goes out in several writes; with Nagle on, each later one
    // would wait for the peer's ACK of the first (up to its delayed-ACK timer).
    .tcp_nodelay(true)
    // The drain already waited for sockets; this only bounds in-flight requests.
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    log::info!(
        "switchboard listening on http://{addr} (node {}, {} store, {} relay)",
        app.config().node_id,
        if app.store().is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        app.relay().name()
    );
    // What to do next, for whoever just ran the README's command.
    // A wildcard address is not one to open: name a loopback one on the same port.
    let page = if addr.ip().is_unspecified() {
        format!("localhost:{}", addr.port())
    } else {
        addr.to_string()
    };
    log::info!(
        "demo chat: open http://{page}/ in two browser windows; tokens: `switchboard token alice` \
         (or ./target/release/switchboard token alice)"
    );
    if crate::service::dev::login_enabled(&app) {
        log::warn!(
            "!!! dev login is ON (development secret in use): POST /api/v1/dev/token gives a token \
             for any user to whoever reaches {addr}. It is off whenever JWT_SECRET or \
             JWT_PUBLIC_KEY is set. !!!"
        );
    }
    tokio::spawn(shutdown::on_signal(app, server.handle(), transitions));
    server.await?;
    log::info!("switchboard stopped");
    Ok(())
}
