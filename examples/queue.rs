//! A distributed queue: producers put items, consumers take them, each item locked by one
//! consumer while processed and requeued if that consumer fails or dies (at-least-once: a
//! consumer that dies after finishing an item, before removing it, has it done again).
//!
//! ```sh
//! cargo run -p zk-server -- --port 2181 &          # or any ZooKeeper server
//! cargo run --example queue -- --connect 127.0.0.1:2181 --role consumer --name c1 &
//! cargo run --example queue -- --connect 127.0.0.1:2181 --role consumer --name c2 &
//! cargo run --example queue -- --connect 127.0.0.1:2181 --role producer --name p1 --items 20
//! ```
//!
//! Consumers run until Ctrl-C; with `--fail-every N` a consumer fails every Nth item, which is
//! then requeued for another try.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use zk::client::{Client, ExponentialBackoffRetry};
use zk::recipes::queue::Utf8Serializer;
use zk::recipes::DistributedQueue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Put `--items` items, one every `--interval-ms`.
    Producer,
    /// Take items until Ctrl-C.
    Consumer,
}

#[derive(Debug, Parser)]
struct Args {
    /// The servers (`host:port[,host:port…]`).
    #[arg(long, env = "ZK_CONNECT", default_value = "127.0.0.1:2181")]
    connect: String,
    /// What this process does.
    #[arg(long, value_enum)]
    role: Role,
    /// The queue path.
    #[arg(long, default_value = "/examples/queue")]
    path: String,
    /// This process's name (in the items it produces and the lines it prints).
    #[arg(long, default_value_t = format!("pid-{}", std::process::id()))]
    name: String,
    /// How many items a producer puts.
    #[arg(long, default_value_t = 10)]
    items: u32,
    /// Pause between a producer's items.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// A consumer fails every Nth item (0: never).
    #[arg(long, default_value_t = 0)]
    fail_every: u64,
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
    let lock_path = format!("{}-locks", args.path);
    match args.role {
        Role::Producer => {
            let queue = DistributedQueue::builder(client.clone(), &args.path, Utf8Serializer)
                .build_queue()?;
            queue.start().await?; // Curator's rule: a queue is started before use
            for i in 1..=args.items {
                let item = format!("item {i} from {}", args.name);
                let node = queue.put(item.clone()).await?;
                println!("[{}] put {item:?} as {node}", args.name);
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
            }
            queue.close().await;
        }
        Role::Consumer => {
            let name = args.name.clone();
            let seen = Arc::new(AtomicU64::new(0));
            let fail_every = args.fail_every;
            let queue = DistributedQueue::builder(client.clone(), &args.path, Utf8Serializer)
                .lock_path(&lock_path)
                .consumer(move |item: String| {
                    let name = name.clone();
                    let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                    async move {
                        if fail_every > 0 && n % fail_every == 0 {
                            println!("[{name}] failed on {item:?}: it goes back to the queue");
                            return Err("simulated failure");
                        }
                        println!("[{name}] took {item:?}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(())
                    }
                })
                .build_queue()?;
            queue.start().await?;
            println!("[{}] consuming {} (Ctrl-C to stop)", args.name, args.path);
            tokio::signal::ctrl_c().await?;
            queue.close().await;
        }
    }
    client.close().await?;
    Ok(())
}
