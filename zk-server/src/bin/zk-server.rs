//! The `zk-server` binary: a ZooKeeper-compatible server, standalone or an ensemble member.
//!
//! ```text
//! zk-server --port 2181                      # data in ./zk-data
//! zk-server --port 2181 --data-dir /var/lib/zk
//! zk-server --config zoo.cfg     # server.N lines and dataDir/myid: an ensemble member
//! ```
//!
//! Exit codes: 0 after SIGINT/SIGTERM, 1 when the server fails (e.g. a log write error),
//! 2 for a bad command line or configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zk_server::{FourLetterWhitelist, Server, ServerConfig};

// The server allocates many small, short-lived buffers across threads; jemalloc handles that
// markedly better than glibc's allocator (see the commit that added it for figures). Its
// options are set when it is built, in .cargo/config.toml.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The data directory without --data-dir or --config, relative to the working directory.
const DEFAULT_DATA_DIR: &str = "zk-data";

/// A ZooKeeper-compatible server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A zoo.cfg file (other options override its values).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Client port.
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long)]
    address: Option<std::net::IpAddr>,
    /// Data directory (snapshots, and the txn log unless --data-log-dir); without it or
    /// --config, ./zk-data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Txn-log directory.
    #[arg(long)]
    data_log_dir: Option<PathBuf>,
    /// tickTime in ms.
    #[arg(long)]
    tick_time: Option<u32>,
    /// Enable every four-letter word.
    #[arg(long)]
    all_four_letter_words: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match build_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("zk-server: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("zk-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(config))
}

fn build_config(args: &Args) -> Result<ServerConfig, String> {
    let mut config = match &args.config {
        Some(path) => {
            let mut text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            // --data-dir replaces zoo.cfg's dataDir before the file is read as a whole (a
            // later key wins), so that myid is read from the directory actually used.
            if let Some(dir) = &args.data_dir {
                text.push_str(&format!("\ndataDir={}\n", dir.display()));
            }
            let (config, warnings) = zk_server::config::parse_zoo_cfg(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for warning in warnings {
                tracing::warn!("{}: {warning}", path.display());
            }
            config
        }
        None => {
            let dir = args.data_dir.clone().unwrap_or_else(|| {
                tracing::info!(
                    "no --data-dir or --config given: keeping data in ./{DEFAULT_DATA_DIR}"
                );
                PathBuf::from(DEFAULT_DATA_DIR)
            });
            ServerConfig::new(dir)
        }
    };
    if let Some(port) = args.port {
        config.client_port = port;
    }
    if let Some(address) = args.address {
        config.client_port_address = address;
    }
    if let Some(dir) = &args.data_log_dir {
        config.data_log_dir = Some(dir.clone());
    }
    if let Some(tick) = args.tick_time {
        if tick == 0 {
            return Err("--tick-time must be positive".into());
        }
        config.tick_time_ms = tick;
    }
    if args.all_four_letter_words {
        config.four_letter_words = FourLetterWhitelist::All;
    }
    Ok(config)
}

async fn serve(config: ServerConfig) -> ExitCode {
    let started = std::time::Instant::now();
    let data_dir = config.data_dir.clone();
    let mut server = match Server::start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("zk-server: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "zk-server listening on {} (data dir {}), ready in {} ms",
        server.local_addr(),
        data_dir.display(),
        started.elapsed().as_millis()
    );
    let stop = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    tokio::select! {
        () = stop => {
            tracing::info!("shutting down");
            match server.shutdown().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zk-server: {e}");
                    ExitCode::from(1)
                }
            }
        }
        result = server.wait() => {
            if let Err(e) = result {
                eprintln!("zk-server: {e}");
            }
            ExitCode::from(1)
        }
    }
}
