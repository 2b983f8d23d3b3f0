//! Several processes contend for one `zk_recipes::Mutex`; each prints when it holds the lock.
//!
//! ```sh
//! cargo run -p zk-server -- --port 2181 &          # or any ZooKeeper server
//! cargo run --example lock -- --connect 127.0.0.1:2181 --name a &
//! cargo run --example lock -- --connect 127.0.0.1:2181 --name b
//! ```
//!
//! Each process acquires the lock, holds it for `--hold-ms`, releases it and tries again,
//! `--rounds` times. While holding, it prints the fencing token (the lock node's czxid) and
//! gives up early if the lock state leaves HELD (connection suspended or session lost).

use std::time::Duration;

use clap::Parser;
use zk::client::{Client, ExponentialBackoffRetry};
use zk::recipes::Mutex;

#[derive(Debug, Parser)]
struct Args {
    /// The servers (`host:port[,host:port…]`).
    #[arg(long, env = "ZK_CONNECT", default_value = "127.0.0.1:2181")]
    connect: String,
    /// The lock path.
    #[arg(long, default_value = "/examples/lock")]
    path: String,
    /// This process's name (written into its lock nodes).
    #[arg(long, default_value_t = format!("pid-{}", std::process::id()))]
    name: String,
    /// How long to hold the lock each time.
    #[arg(long, default_value_t = 1000)]
    hold_ms: u64,
    /// How many times to take the lock.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let client = Client::builder()
        .connect_string(&args.connect)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 5))
        .build()?;
    client
        .block_until_connected(Duration::from_secs(15))
        .await?;
    let mutex = Mutex::with_node_data(client.clone(), &args.path, args.name.as_bytes())?;
    for round in 1..=args.rounds {
        println!("[{}] waiting for {} (round {round})", args.name, args.path);
        let guard = mutex.acquire().await?;
        println!(
            "[{}] HOLDS {} (token {}, node {})",
            args.name,
            args.path,
            guard.fencing_token(),
            guard.node_path()
        );
        tokio::select! {
            state = guard.at_risk() => println!("[{}] lock at risk: {state:?}; stopping work", args.name),
            _ = tokio::time::sleep(Duration::from_millis(args.hold_ms)) => {}
        }
        guard.release().await?;
        println!("[{}] released", args.name);
    }
    client.close().await?;
    Ok(())
}
