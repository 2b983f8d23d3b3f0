//! Several processes join one `zk_recipes::LeaderLatch`; each prints leadership changes and
//! the current participants.
//!
//! ```sh
//! cargo run -p zk-server -- --port 2181 &          # or any ZooKeeper server
//! cargo run --example leader -- --connect 127.0.0.1:2181 --id a &
//! cargo run --example leader -- --connect 127.0.0.1:2181 --id b
//! ```
//!
//! With `--lead-ms` the leader steps down after that long (closes its latch), so leadership
//! moves to the next process. Killing the leader (Ctrl-C) moves it too, once its session
//! times out (10 s).

use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use zk::client::{Client, ExponentialBackoffRetry};
use zk::recipes::LeaderLatch;

#[derive(Debug, Parser)]
struct Args {
    /// The servers (`host:port[,host:port…]`).
    #[arg(long, env = "ZK_CONNECT", default_value = "127.0.0.1:2181")]
    connect: String,
    /// The latch path.
    #[arg(long, default_value = "/examples/leader")]
    path: String,
    /// This participant's id.
    #[arg(long, default_value_t = format!("pid-{}", std::process::id()))]
    id: String,
    /// Step down after leading this long (0: lead until stopped).
    #[arg(long, default_value_t = 0)]
    lead_ms: u64,
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
    let latch = LeaderLatch::new(client.clone(), &args.path, args.id.clone())?;
    // Every change, none coalesced: a loss is never hidden by a quick regain.
    let mut changes = latch.leadership_changes();
    latch.start()?;
    let mut leading = false;
    loop {
        let participants: Vec<String> = latch
            .participants()
            .await
            .map(|ps| ps.into_iter().map(|p| p.id).collect())
            .unwrap_or_default();
        println!(
            "[{}] {} (participants, leader first: {participants:?})",
            args.id,
            if leading { "LEADER" } else { "follower" }
        );
        if leading && args.lead_ms > 0 {
            // Lead for `lead_ms` — unless leadership is lost first (connection suspended,
            // session lost): then stop claiming it at once and wait to lead again.
            let lost = tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(args.lead_ms)) => false,
                change = changes.next() => change.is_some(),
            };
            if lost {
                println!("[{}] leadership lost; no longer leading", args.id);
                leading = false;
                continue;
            }
            println!("[{}] stepping down", args.id);
            break;
        }
        match changes.next().await {
            Some(now) => leading = now,
            None => break,
        }
    }
    latch.close().await?;
    client.close().await?;
    Ok(())
}
