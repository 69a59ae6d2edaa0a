//! The relay binary: parse the configuration, bind, run.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    relay::tune_allocator();
    let config = relay::Config::parse();
    if let Some(relay::config::Command::Admin { op }) = &config.command {
        return relay::admin::main(&config, op);
    }
    relay::init_tracing(&config);
    relay::raise_fd_limit();
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(serve(config)),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: relay::Config) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(db = %config.db, static_dir = %config.static_dir.display(), "ferrochat relay on http://{addr}");
    match relay::run(listener, config, relay::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "relay failed");
            ExitCode::FAILURE
        }
    }
}
