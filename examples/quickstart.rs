//! The quickstart: an embedded ZooKeeper-compatible server and the client, in one program.
//!
//! ```text
//! cargo run --example quickstart                       # embedded server, nothing to install
//! cargo run --example quickstart -- --connect HOST:PORT  # any ZooKeeper ensemble (or ZK_CONNECT)
//! ```
//!
//! It shows, in a few seconds: three workers electing a master (and a new master when the old
//! one stops), tasks taking a distributed lock in turn with their fencing tokens, workers
//! registering as ephemeral nodes and a watcher seeing one leave, and a versioned
//! (compare-and-set) configuration update. (Service discovery is being built in zk-discovery.)

use std::time::Duration;

use zk::client::{Client, CreateMode, Error, ExponentialBackoffRetry};
use zk::recipes::{LeaderLatch, Mutex};
use zk::server::TestingServer;

const WAIT: Duration = Duration::from_secs(10);

fn connect_arg() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--connect" {
            return args.next();
        }
        if let Some(value) = arg.strip_prefix("--connect=") {
            return Some(value.to_owned());
        }
    }
    std::env::var("ZK_CONNECT").ok().filter(|v| !v.is_empty())
}

fn client(connect: &str) -> Result<Client, Error> {
    Client::builder()
        .connect_string(connect)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 5))
        .namespace("quickstart")
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A server: the embedded one unless --connect / ZK_CONNECT names another.
    let (_embedded, connect) = match connect_arg() {
        Some(connect) => (None, connect),
        None => {
            let server = TestingServer::start().await?;
            let connect = server.connect_string();
            println!("started an embedded ZooKeeper-compatible server on {connect}");
            (Some(server), connect)
        }
    };

    // 2. Leader election: three workers join a latch; exactly one leads. When it stops, the
    //    next one takes over.
    let mut latches = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let session = client(&connect)?;
        session.block_until_connected(WAIT).await?;
        let latch = LeaderLatch::new(session.clone(), "/election", name)?;
        latch.start()?;
        latches.push((latch, session));
    }
    let leader = await_leader(&latches).await?;
    println!("election: {leader} is the master");
    let (stepping_down, session) = latches.remove(
        latches
            .iter()
            .position(|(l, _)| l.id() == leader)
            .unwrap_or(0),
    );
    stepping_down.close().await?;
    session.close().await?;
    let next = await_leader(&latches).await?;
    println!("election: {leader} stopped, {next} is the new master");
    for (latch, session) in latches {
        latch.close().await?;
        session.close().await?;
    }

    // 3. A distributed lock taken in turn by three tasks. Each grant carries a fencing token
    //    (the lock node's zxid): the protected resource rejects a token lower than one it saw.
    let lock_client = client(&connect)?;
    lock_client.block_until_connected(WAIT).await?;
    let mut tasks = Vec::new();
    for task in 1..=3 {
        let mutex = Mutex::new(lock_client.clone(), "/locks/report")?;
        tasks.push(tokio::spawn(async move {
            let guard = mutex.acquire().await?;
            println!(
                "lock: task {task} holds the lock with fencing token {}",
                guard.fencing_token()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            guard.release().await?;
            Ok::<_, zk::recipes::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    lock_client.close().await?;

    // 4. Three workers, each with its own session, register under /workers. Their nodes are
    //    ephemeral (gone when the session ends) and sequential (the server numbers them);
    //    parents are created as containers, and protected mode survives a lost create reply.
    let mut workers = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let worker = client(&connect)?;
        worker.block_until_connected(WAIT).await?;
        let node = worker
            .create("/workers/worker-")
            .mode(CreateMode::EphemeralSequential)
            .creating_parent_containers_if_needed()
            .with_protection()
            .data(name.as_bytes().to_vec())
            .await?;
        println!("worker {name} registered as {}", node.path);
        workers.push((name, worker));
    }

    // 5. An observer lists the workers and watches the list.
    let observer = client(&connect)?;
    observer.block_until_connected(WAIT).await?;
    let (children, watch) = observer.get_children("/workers").watched().await?;
    println!("observer sees {} workers", children.len());

    // 6. Worker alpha stops: its session closes, its node disappears, the watch fires.
    let (name, leaving) = workers.remove(0);
    leaving.close().await?;
    let event = tokio::time::timeout(WAIT, watch).await?;
    println!(
        "worker {name} stopped; observer notified: {:?} on {}",
        event.event_type, event.path
    );
    let mut remaining = Vec::new();
    for child in observer.get_children("/workers").await? {
        let (data, _) = observer.get_data(&format!("/workers/{child}")).await?;
        remaining.push(String::from_utf8_lossy(&data).into_owned());
    }
    remaining.sort();
    println!("workers still registered: {}", remaining.join(", "));

    // 7. A configuration value updated with compare-and-set: a write based on a stale read
    //    is refused instead of silently overwriting.
    let config = observer
        .create("/config")
        .data(b"workers=3".to_vec())
        .or_set_data()
        .await?;
    let (_, stat) = observer.get_data(&config.path).await?;
    observer
        .set_data(&config.path, b"workers=2".to_vec())
        .version(stat.version)
        .await?;
    match observer
        .set_data(&config.path, b"workers=9".to_vec())
        .version(stat.version)
        .await
    {
        Err(Error::BadVersion) => println!(
            "stale configuration update refused (version {} is old)",
            stat.version
        ),
        other => println!("unexpected: {other:?}"),
    }
    let (data, stat) = observer.get_data(&config.path).await?;
    println!(
        "configuration is {:?} at version {}",
        String::from_utf8_lossy(&data),
        stat.version
    );

    for (_, worker) in workers {
        worker.close().await?;
    }
    observer.delete("/config").quietly().await?;
    observer.close().await?;
    println!("done");
    Ok(())
}

/// The id of the latch participant that gains leadership first.
async fn await_leader(
    latches: &[(LeaderLatch, Client)],
) -> Result<String, Box<dyn std::error::Error>> {
    let waits = latches.iter().map(|(latch, _)| {
        Box::pin(async move {
            latch
                .await_leadership()
                .await
                .map(|()| latch.id().to_owned())
        })
    });
    let (leader, _, _) = tokio::time::timeout(WAIT, futures::future::select_all(waits)).await?;
    Ok(leader?)
}
