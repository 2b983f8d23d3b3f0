//! The quickstart: an embedded ZooKeeper-compatible server and the client, in one program.
//!
//! ```text
//! cargo run --example quickstart                       # embedded server, nothing to install
//! cargo run --example quickstart -- --connect HOST:PORT  # any ZooKeeper ensemble (or ZK_CONNECT)
//! ```
//!
//! It shows, in a few seconds: three workers electing a master (and a new master when the old
//! one stops), tasks taking a distributed lock in turn with their fencing tokens, two service
//! instances registering and a consumer discovering them and reacting when one leaves, and a
//! versioned (compare-and-set) configuration update.

use std::time::Duration;

use zk::client::{Client, Error, ExponentialBackoffRetry};
use zk::discovery::{ServiceDiscovery, ServiceInstance, UriSpec};
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

    // 4. Service discovery: two instances of the "greeter" service register, each from its
    //    own session. Their nodes are ephemeral: an instance whose process dies disappears.
    //    The JSON stored is exactly what Java Curator services write and read.
    let mut instances = Vec::new();
    for (id, port) in [("greeter-1", 8081), ("greeter-2", 8082)] {
        let session = client(&connect)?;
        session.block_until_connected(WAIT).await?;
        let discovery = ServiceDiscovery::<String>::builder(session.clone()).build()?;
        let instance = ServiceInstance::builder("greeter")
            .id(id)
            .address("127.0.0.1")
            .port(port)
            .payload(format!("hello from {id}"))
            .uri_spec(UriSpec::parse("{scheme}://{address}:{port}")?)
            .build()?;
        let uri = instance.build_uri_spec();
        discovery.register(instance).await?;
        println!("discovery: {id} registered at {uri}");
        instances.push((id, discovery, session));
    }

    // 5. A consumer discovers the instances (a cache kept current by a watch) and picks one
    //    per call, round robin.
    let consumer = client(&connect)?;
    consumer.block_until_connected(WAIT).await?;
    let provider = ServiceDiscovery::<String>::builder(consumer.clone())
        .build()?
        .service_provider("greeter")
        .build()?;
    provider.start().await?;
    println!(
        "discovery: consumer found {} instances of greeter",
        provider.get_all_instances().len()
    );
    for _ in 0..4 {
        if let Some(pick) = provider.get_instance() {
            println!(
                "discovery: consumer picks {} ({}, payload {:?})",
                pick.id,
                pick.build_uri_spec(),
                pick.payload.unwrap_or_default()
            );
        }
    }

    // 6. greeter-1's process stops (its session closes): the consumer's cache drops it and
    //    every pick goes to greeter-2.
    let (gone, _, session) = instances.remove(0);
    let mut changes = provider.cache().changes();
    session.close().await?;
    tokio::time::timeout(WAIT, async {
        while changes.borrow_and_update().iter().any(|i| i.id == gone) {
            if changes.changed().await.is_err() {
                break;
            }
        }
    })
    .await?;
    let picks: Vec<String> = (0..3)
        .filter_map(|_| provider.get_instance().map(|i| i.id))
        .collect();
    println!(
        "discovery: {gone} stopped; consumer now picks {}",
        picks.join(", ")
    );
    provider.close().await;
    for (_, discovery, session) in instances {
        discovery.close().await?;
        session.close().await?;
    }

    // 7. A configuration value updated with compare-and-set: a write based on a stale read
    //    is refused instead of silently overwriting.
    let config = consumer
        .create("/config")
        .data(b"workers=3".to_vec())
        .or_set_data()
        .await?;
    let (_, stat) = consumer.get_data(&config.path).await?;
    consumer
        .set_data(&config.path, b"workers=2".to_vec())
        .version(stat.version)
        .await?;
    match consumer
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
    let (data, stat) = consumer.get_data(&config.path).await?;
    println!(
        "configuration is {:?} at version {}",
        String::from_utf8_lossy(&data),
        stat.version
    );

    consumer.delete("/config").quietly().await?;
    consumer.close().await?;
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
