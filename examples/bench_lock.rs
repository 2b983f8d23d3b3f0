//! Lock benchmark: uncontended `Mutex` acquire+release latency, and the contended hand-off
//! rate and latency with several waiters, next to one write round-trip for scale.
//!
//! ```sh
//! cargo run --release --example bench_lock                        # embedded server
//! cargo run --release --example bench_lock -- --connect 127.0.0.1:2181 --waiters 10
//! ```
//!
//! Prints one `RESULT …` line per measurement:
//! * `write_rtt` — a setData round trip (the unit the lock is measured against), sampled
//!   before and between the lock measurements so that both see the same machine (on a busy
//!   machine, minutes apart, they could differ by a third);
//! * `uncontended` — acquire + release by one session with nobody else waiting (a create,
//!   a getChildren and a delete);
//! * `handoff` — `--waiters` sessions queued behind a holder, each releasing as soon as it
//!   holds: the time from one holder's release call to the next holder's acquire returning;
//! * `contended` — `--waiters` sessions each looping acquire → release for `--seconds`: the
//!   hand-offs per second, and the same release-to-acquire gap (here the releaser queues again
//!   at once, so its create competes with the next holder's delete for the log's fsync).

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
    /// Queues of `--waiters` hand-offs measured for `handoff`.
    #[arg(long, default_value_t = 200)]
    queues: u32,
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

/// Records the gap since the last release call, if one is pending.
fn record_handoff(released: &StdMutex<Option<Instant>>, handoffs: &StdMutex<Histogram<u64>>) {
    let now = Instant::now();
    if let Some(t) = released.lock().ok().and_then(|mut r| r.take()) {
        if let Ok(mut h) = handoffs.lock() {
            let _ = h.record(now.duration_since(t).as_micros() as u64);
        }
    }
}

/// Adds `n` setData round trips on `path` to `rtt`.
async fn sample_write_rtt(
    client: &Client,
    path: &str,
    rtt: &mut Histogram<u64>,
    n: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    for i in 0..n {
        let start = Instant::now();
        client.set_data(path, i.to_be_bytes().to_vec()).await?;
        rtt.record(start.elapsed().as_micros() as u64)?;
    }
    Ok(())
}

/// Notes that the holder is about to release.
fn mark_release(released: &StdMutex<Option<Instant>>) {
    if let Ok(mut r) = released.lock() {
        *r = Some(Instant::now());
    }
}

fn snapshot(h: &StdMutex<Histogram<u64>>) -> Histogram<u64> {
    h.lock().map(|h| h.clone()).unwrap_or_else(|_| histogram())
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

    // One write round trip, for scale: warmed up here, sampled again alongside each
    // measurement below.
    client.create(&root).await?;
    let mut rtt = histogram();
    sample_write_rtt(&client, &root, &mut rtt, args.iterations).await?;

    // Uncontended acquire + release.
    let mutex = Mutex::new(client.clone(), &format!("{root}/uncontended"))?;
    let mut unc = histogram();
    for _ in 0..args.iterations {
        let start = Instant::now();
        let guard = mutex.acquire().await?;
        guard.release().await?;
        unc.record(start.elapsed().as_micros() as u64)?;
        sample_write_rtt(&client, &root, &mut rtt, 1).await?;
    }

    let mut sessions = Vec::new();
    for _ in 0..args.waiters {
        sessions.push(session(&connect).await?);
    }
    let released: Arc<StdMutex<Option<Instant>>> = Arc::new(StdMutex::new(None));

    // Queued hand-offs: every waiter queues behind a holder and releases as soon as it holds.
    let path = format!("{root}/queued");
    let handoffs = Arc::new(StdMutex::new(histogram()));
    let holder = Mutex::new(client.clone(), &path)?;
    for _ in 0..args.queues {
        let guard = holder.acquire().await?;
        let mut tasks = Vec::new();
        let mut waiting = Vec::new();
        for c in &sessions {
            let mutex = Mutex::new(c.clone(), &path)?;
            waiting.push(mutex.wait_stats());
            let (released, handoffs) = (released.clone(), handoffs.clone());
            tasks.push(tokio::spawn(async move {
                let guard = mutex.acquire().await?;
                record_handoff(&released, &handoffs);
                mark_release(&released);
                guard.release().await
            }));
        }
        // Every waiter is queued and watching its predecessor.
        for w in &mut waiting {
            w.wait_for(|s| s.watches_set >= 1).await?;
        }
        mark_release(&released);
        guard.release().await?;
        for t in tasks {
            t.await??;
        }
        sample_write_rtt(&client, &root, &mut rtt, args.waiters as u32).await?;
    }
    result("write_rtt", &rtt, "");
    result(
        "uncontended",
        &unc,
        &format!(
            " p50_vs_write_rtt={:.2}",
            unc.value_at_quantile(0.5) as f64 / rtt.value_at_quantile(0.5).max(1) as f64
        ),
    );
    let h = snapshot(&handoffs);
    result(
        "handoff",
        &h,
        &format!(
            " waiters={} p50_vs_write_rtt={:.2}",
            args.waiters,
            h.value_at_quantile(0.5) as f64 / rtt.value_at_quantile(0.5).max(1) as f64
        ),
    );

    // Contended hand-offs: each waiter loops acquire → release; the gap between a release
    // call and the next acquire returning is one hand-off.
    let path = format!("{root}/contended");
    let handoffs = Arc::new(StdMutex::new(histogram()));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for c in sessions {
        let mutex = Mutex::new(c.clone(), &path)?;
        let released = released.clone();
        let handoffs = handoffs.clone();
        tasks.push(tokio::spawn(async move {
            let mut count = 0u64;
            while Instant::now() < deadline {
                let guard = mutex.acquire().await?;
                record_handoff(&released, &handoffs);
                count += 1;
                mark_release(&released);
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
    let h = snapshot(&handoffs);
    result(
        "contended",
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
