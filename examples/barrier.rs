//! A double barrier: N processes start a phase together and finish it together.
//!
//! ```sh
//! cargo run -p zk-server -- --port 2181 &          # or any ZooKeeper server
//! for i in 1 2 3; do cargo run --example barrier -- --connect 127.0.0.1:2181 --members 3 --name w$i & done
//! ```
//!
//! Each process enters the barrier (and waits there until all `--members` have arrived), works
//! for a random while, then leaves (and waits until everyone has left).

use std::time::{Duration, Instant};

use clap::Parser;
use zk::client::{Client, ExponentialBackoffRetry};
use zk::recipes::DoubleBarrier;

#[derive(Debug, Parser)]
struct Args {
    /// The servers (`host:port[,host:port…]`).
    #[arg(long, env = "ZK_CONNECT", default_value = "127.0.0.1:2181")]
    connect: String,
    /// The barrier path.
    #[arg(long, default_value = "/examples/barrier")]
    path: String,
    /// How many processes take part.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// This process's name.
    #[arg(long, default_value_t = format!("pid-{}", std::process::id()))]
    name: String,
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
    let barrier = DoubleBarrier::new(client.clone(), &args.path, args.members)?;
    let start = Instant::now();
    println!(
        "[{}] entering; waiting for {} members",
        args.name, args.members
    );
    barrier.enter().await?;
    println!(
        "[{}] entered after {:?}: all {} are here",
        args.name,
        start.elapsed(),
        args.members
    );
    let work = Duration::from_millis(200 + u64::from(std::process::id() % 7) * 150); // uneven work
    tokio::time::sleep(work).await;
    println!("[{}] done working ({work:?}); leaving", args.name);
    barrier.leave().await?;
    println!("[{}] left: everyone has finished", args.name);
    client.close().await?;
    Ok(())
}
