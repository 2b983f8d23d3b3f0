//! Load generator for ZooKeeper servers (ours or Apache's), using the `zk` client.
//!
//! ```sh
//! cargo run --release --example bench -- --connect 127.0.0.1:2181 --op get \
//!     --clients 4 --depth 64 --size 100 --ops 200000
//! ```
//!
//! `--clients` sessions each keep `--depth` requests in flight. Progress goes to stderr; the
//! last line on stdout is exactly one
//! `RESULT op=… ops_per_s=… p50_us=… p99_us=… p999_us=… errors=…`.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use zk::client::{Client, CreateMode, RetryNTimes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Op {
    /// Persistent creates of new nodes.
    Create,
    /// setData on existing nodes.
    Set,
    /// getData on existing nodes.
    Get,
    /// 70 % get, 20 % set, 10 % create.
    Mixed,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Set => "set",
            Op::Get => "get",
            Op::Mixed => "mixed",
        }
    }
}

/// ZooKeeper load generator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Server(s): host:port[,host:port…].
    #[arg(long, default_value = "127.0.0.1:2181")]
    connect: String,
    /// Operation to run.
    #[arg(long, value_enum, default_value_t = Op::Get)]
    op: Op,
    /// Number of sessions.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 64)]
    depth: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Total operations (across all sessions).
    #[arg(long, default_value_t = 100_000)]
    ops: u64,
    /// Stop after this many seconds even if --ops is not reached.
    #[arg(long)]
    duration: Option<f64>,
    /// Keep the benchmark's nodes instead of deleting them at the end.
    #[arg(long)]
    keep: bool,
}

struct Shared {
    issued: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    limit: u64,
    deadline: Option<Instant>,
}

impl Shared {
    fn next(&self) -> Option<u64> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        (n < self.limit).then_some(n)
    }
}

async fn worker(
    client: Client,
    op: Op,
    root: String,
    id: String,
    data: Vec<u8>,
    shared: Arc<Shared>,
) -> (Vec<u32>, u64) {
    // Raw latencies (µs), put in a histogram after the timed section: recording into one
    // histogram per worker (hundreds of them, each over 100 KB) cost about a tenth of the
    // driver's CPU in cache misses.
    let mut latencies = Vec::new();
    let own = format!("{root}/w-{id}");
    let mut i = 0u64;
    while let Some(n) = shared.next() {
        let kind = match op {
            Op::Mixed => match n % 10 {
                0 => Op::Create,
                1 | 2 => Op::Set,
                _ => Op::Get,
            },
            other => other,
        };
        let start = Instant::now();
        let result = match kind {
            Op::Create => {
                i += 1;
                client
                    .create(&format!("{own}-{i}"))
                    .data(data.clone())
                    .await
                    .map(|_| ())
            }
            Op::Set => client.set_data(&own, data.clone()).await.map(|_| ()),
            _ => client.get_data(&own).await.map(|_| ()),
        };
        let micros = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
        match result {
            Ok(()) => latencies.push(micros.max(1)),
            Err(e) => {
                if shared.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("error: {e}");
                }
            }
        }
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
    // The creates tried, for the cleanup: nodes `{own}-1` ..= `{own}-{i}`.
    (latencies, i)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let clients = args.clients.max(1);
    let depth = args.depth.max(1);
    let root = format!("/bench-{}", uuid::Uuid::new_v4().simple());
    let data = vec![b'x'; args.size];
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = Client::builder()
            .connect_string(&args.connect)
            .session_timeout(Duration::from_secs(30))
            .retry_policy(RetryNTimes::new(3, Duration::from_millis(100)))
            .build()?;
        client
            .block_until_connected(Duration::from_secs(15))
            .await?;
        sessions.push(client);
    }
    let setup = &sessions[0];
    setup.create(&root).await?;
    // One node per worker for set/get.
    let mut prepare = Vec::new();
    for c in 0..clients {
        for w in 0..depth {
            prepare.push(
                setup
                    .create(&format!("{root}/w-{c}-{w}"))
                    .data(data.clone())
                    .mode(CreateMode::Persistent),
            );
        }
    }
    for chunk in prepare.chunks(1024) {
        for r in futures::future::join_all(chunk.iter().cloned().map(IntoFuture::into_future)).await
        {
            r?;
        }
    }

    let shared = Arc::new(Shared {
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        limit: args.ops,
        deadline: args
            .duration
            .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0))),
    });
    eprintln!(
        "bench: op={} clients={clients} depth={depth} size={} ops={} duration={:?} connect={}",
        args.op.name(),
        args.size,
        args.ops,
        args.duration,
        args.connect
    );
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in sessions.iter().enumerate() {
        for w in 0..depth {
            let id = format!("{c}-{w}");
            let task = tokio::spawn(worker(
                client.clone(),
                args.op,
                root.clone(),
                id.clone(),
                data.clone(),
                shared.clone(),
            ));
            tasks.push((id, task));
        }
    }
    let progress = tokio::spawn({
        let shared = shared.clone();
        async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = shared.done.load(Ordering::Relaxed);
                eprintln!(
                    "  {:>6.1}s  {done} ops  ({} ops/s)  errors={}",
                    start.elapsed().as_secs_f64(),
                    done - last,
                    shared.errors.load(Ordering::Relaxed)
                );
                last = done;
            }
        }
    });
    let mut latencies = Vec::with_capacity(tasks.len());
    // Every node of the run, deleted by name at the end: listing the root's children could
    // take a reply larger than a client accepts (300k creates make one of ~4.5 MB).
    let mut nodes = Vec::new();
    for (id, task) in tasks {
        let (worker_latencies, creates) = task.await?;
        latencies.push(worker_latencies);
        if !args.keep {
            let own = format!("{root}/w-{id}");
            nodes.extend((1..=creates).map(|k| format!("{own}-{k}")));
            nodes.push(own);
        }
    }
    let elapsed = start.elapsed();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for micros in latencies.into_iter().flatten() {
        hist.saturating_record(u64::from(micros));
    }
    progress.abort();
    let done = shared.done.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);

    if !args.keep {
        eprintln!("bench: cleaning up {root}");
        for chunk in nodes.chunks(1024) {
            let deletes = chunk
                .iter()
                .map(|p| setup.delete(p).quietly().into_future());
            for r in futures::future::join_all(deletes).await {
                r?;
            }
        }
        setup.delete(&root).await?;
    }
    for client in &sessions {
        let _ = client.close().await;
    }
    let ops_per_s = done as f64 / elapsed.as_secs_f64().max(1e-9);
    println!(
        "RESULT op={} ops_per_s={:.0} p50_us={} p99_us={} p999_us={} errors={}",
        args.op.name(),
        ops_per_s,
        hist.value_at_quantile(0.50),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        errors
    );
    Ok(())
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}
