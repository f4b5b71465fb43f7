//! The `switchboard` binary: parse the command line, load configuration, run the command.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use switchboard::cli::{Cli, Command};
use switchboard::config::Config;

/// jemalloc rather than glibc's malloc: under the soak's steady load RSS rose more slowly
/// (about 0.5–0.6 of glibc's slope), and the gateway used a smaller share of a core
/// (docs/performance.md, "The allocator").
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is worth a line.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("warning: .env: {e}");
        }
    }
    let (filter, warning) = switchboard::cli::log_filter(std::env::var("RUST_LOG").ok().as_deref());
    env_logger::Builder::from_env(env_logger::Env::new().write_style("RUST_LOG_STYLE"))
        .parse_filters(&filter)
        .init();
    if let Some(w) = warning {
        log::warn!("{w}");
    }
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            other => switchboard::cli::run_tool(&config, other).await,
        }
    })
}

async fn serve(config: Config) -> ExitCode {
    let listener = match TcpListener::bind(config.bind_addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: BIND_ADDR: cannot listen on {}: {e}; put a free host:port",
                config.bind_addr
            );
            return ExitCode::FAILURE;
        }
    };
    match switchboard::app::run(config, listener).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
