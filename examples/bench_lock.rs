//! Lock benchmark: uncontended `Mutex` acquire+release latency, and the contended hand-off
//! rate and latency with several waiters, next to one write round-trip for scale.
//!
//! ```sh
//! cargo run --release --example bench_lock                        # embedded server
//! cargo run --release --example bench_lock -- --connect 127.0.0.1:2181 --waiters 10
//! ```
//!
//! Prints one `RESULT …` line per measurement:
//! * `write_rtt` — a setData round trip (the unit the lock is measured against);
//! * `uncontended` — acquire + release by one session with nobody else waiting (a create,
//!   a getChildren and a delete);
//! * `handoff` — with `--waiters` sessions contending, the time from one holder's release
//!   call to the next holder's acquire returning, and the hand-offs per second.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use zk::client::{Client, RetryNTimes};
use zk::recipes::Mutex;
use zk::server::TestingServer;

#[derive(Debug, Parser)]
struct Args {
    /// The servers; default: an embedded server.
    #[arg(long)]
    connect: Option<String>,
    /// Uncontended acquire+release iterations (and write round trips).
    #[arg(long, default_value_t = 2000)]
    iterations: u32,
    /// Contending sessions for the hand-off measurement.
    #[arg(long, default_value_t = 10)]
    waiters: usize,
    /// How long the contended phase runs, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

fn result(name: &str, h: &Histogram<u64>, extra: &str) {
    println!(
        "RESULT {name} count={} p50_us={} p99_us={} max_us={}{extra}",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.max()
    );
}

async fn session(connect: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let client = Client::builder()
        .connect_string(connect)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(RetryNTimes::new(3, Duration::from_millis(50)))
        .build()?;
    client
        .block_until_connected(Duration::from_secs(15))
        .await?;
    Ok(client)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (_embedded, connect) = match &args.connect {
        Some(c) => (None, c.clone()),
        None => {
            let server = TestingServer::start().await?;
            let c = server.connect_string();
            (Some(server), c)
        }
    };
    let client = session(&connect).await?;
    let root = format!("/bench-lock-{}", std::process::id());

    // One write round trip, for scale.
    client.create(&root).await?;
    let mut rtt = histogram();
    for i in 0..args.iterations {
        let start = Instant::now();
        client.set_data(&root, i.to_be_bytes().to_vec()).await?;
        rtt.record(start.elapsed().as_micros() as u64)?;
    }
    result("write_rtt", &rtt, "");

    // Uncontended acquire + release.
    let mutex = Mutex::new(client.clone(), &format!("{root}/uncontended"))?;
    let mut unc = histogram();
    for _ in 0..args.iterations {
        let start = Instant::now();
        let guard = mutex.acquire().await?;
        guard.release().await?;
        unc.record(start.elapsed().as_micros() as u64)?;
    }
    result(
        "uncontended",
        &unc,
        &format!(
            " p50_vs_write_rtt={:.2}",
            unc.value_at_quantile(0.5) as f64 / rtt.value_at_quantile(0.5).max(1) as f64
        ),
    );

    // Contended hand-offs: each waiter loops acquire → release; the gap between a release
    // call and the next acquire returning is one hand-off.
    let path = format!("{root}/contended");
    let released: Arc<StdMutex<Option<Instant>>> = Arc::new(StdMutex::new(None));
    let handoffs = Arc::new(StdMutex::new(histogram()));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.waiters {
        let c = session(&connect).await?;
        let mutex = Mutex::new(c.clone(), &path)?;
        let released = released.clone();
        let handoffs = handoffs.clone();
        tasks.push(tokio::spawn(async move {
            let mut count = 0u64;
            while Instant::now() < deadline {
                let guard = mutex.acquire().await?;
                let now = Instant::now();
                if let Some(t) = released.lock().ok().and_then(|mut r| r.take()) {
                    if let Ok(mut h) = handoffs.lock() {
                        let _ = h.record(now.duration_since(t).as_micros() as u64);
                    }
                }
                count += 1;
                if let Ok(mut r) = released.lock() {
                    *r = Some(Instant::now());
                }
                guard.release().await?;
            }
            c.close().await?;
            Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(count)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for t in tasks {
        total += t.await?.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let h = handoffs
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    result(
        "handoff",
        &h,
        &format!(
            " waiters={} locks_per_s={:.0} p50_vs_write_rtt={:.2}",
            args.waiters,
            total as f64 / elapsed,
            h.value_at_quantile(0.5) as f64 / rtt.value_at_quantile(0.5).max(1) as f64
        ),
    );

    client.delete(&root).deleting_children_if_needed().await?;
    client.close().await?;
    Ok(())
}
