//! Service discovery: providers register instances of a service, a consumer picks among them.
//!
//! ```sh
//! # Everything in one process, on an embedded server (nothing to install):
//! cargo run --example discovery
//!
//! # Or in several terminals, against any ZooKeeper (or `cargo run -p zk-server -- --port 2181`):
//! cargo run --example discovery -- --connect 127.0.0.1:2181 --role provider --id api-1 --port 8081
//! cargo run --example discovery -- --connect 127.0.0.1:2181 --role provider --id api-2 --port 8082
//! cargo run --example discovery -- --connect 127.0.0.1:2181 --role consumer
//! ```
//!
//! In the demo, two providers register the service `api` with a payload; the consumer picks an
//! instance (round robin) every 200 ms and prints it; after a while provider `api-1` dies (its
//! session closes without unregistering) and the consumer stops picking it. In several
//! terminals, stop a provider with Ctrl-C (it unregisters) or kill it (its instance goes when
//! its session times out, 10 s) and watch the consumer.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use zk::client::{Client, ExponentialBackoffRetry};
use zk::discovery::{ServiceDiscovery, ServiceInstance, ServiceProvider, UriSpec};
use zk::server::TestingServer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Role {
    /// Two providers and a consumer in this process.
    Demo,
    /// Register one instance and keep it until Ctrl-C.
    Provider,
    /// Pick an instance every second until Ctrl-C.
    Consumer,
}

#[derive(Debug, Parser)]
struct Args {
    /// The servers (`host:port[,host:port…]`); default: an embedded server (demo role only).
    #[arg(long, env = "ZK_CONNECT")]
    connect: Option<String>,
    /// What this process does.
    #[arg(long, value_enum, default_value_t = Role::Demo)]
    role: Role,
    /// The service name.
    #[arg(long, default_value = "api")]
    service: String,
    /// The provider's instance id.
    #[arg(long, default_value_t = format!("api-{}", std::process::id()))]
    id: String,
    /// The provider's port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

/// The payload every instance carries.
type Payload = String;

fn client(connect: &str) -> Result<Client, zk::client::Error> {
    Client::builder()
        .connect_string(connect)
        .session_timeout(Duration::from_secs(10))
        .retry_policy(ExponentialBackoffRetry::new(Duration::from_millis(100), 5))
        .build()
}

/// Registers one instance from its own session.
async fn provide(
    connect: &str,
    service: &str,
    id: &str,
    port: u16,
) -> Result<(ServiceDiscovery<Payload>, Client), Box<dyn std::error::Error>> {
    let session = client(connect)?;
    session
        .block_until_connected(Duration::from_secs(15))
        .await?;
    let discovery = ServiceDiscovery::builder(session.clone()).build()?;
    let instance = ServiceInstance::builder(service)
        .id(id)
        .port(port)
        .payload(format!("version 1.0 of {id}"))
        .uri_spec(UriSpec::parse("{scheme}://{address}:{port}")?)
        .build()?;
    let uri = instance.build_uri_spec();
    discovery.register(instance).await?;
    println!("[provider {id}] registered {service} at {uri}");
    Ok((discovery, session))
}

/// A started provider (round robin) of `service`.
async fn consumer(
    connect: &str,
    service: &str,
) -> Result<(ServiceProvider<Payload>, Client), Box<dyn std::error::Error>> {
    let session = client(connect)?;
    session
        .block_until_connected(Duration::from_secs(15))
        .await?;
    let provider = ServiceDiscovery::<Payload>::builder(session.clone())
        .build()?
        .service_provider(service)
        .build()?;
    provider.start().await?;
    Ok((provider, session))
}

fn print_pick(provider: &ServiceProvider<Payload>) {
    match provider.get_instance() {
        Some(i) => println!(
            "[consumer] picked {} at {} ({}) of {} live",
            i.id,
            i.build_uri_spec(),
            i.payload.unwrap_or_default(),
            provider.get_all_instances().len()
        ),
        None => println!("[consumer] no live instance"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (_embedded, connect) = match (&args.connect, args.role) {
        (Some(connect), _) => (None, connect.clone()),
        (None, Role::Demo) => {
            let server = TestingServer::start().await?;
            println!("started an embedded server on {}", server.connect_string());
            let connect = server.connect_string();
            (Some(server), connect)
        }
        (None, _) => return Err("--connect (or ZK_CONNECT) is required for this role".into()),
    };
    match args.role {
        Role::Provider => {
            let (discovery, session) =
                provide(&connect, &args.service, &args.id, args.port).await?;
            tokio::signal::ctrl_c().await?;
            discovery.close().await?;
            session.close().await?;
            println!("[provider {}] unregistered", args.id);
        }
        Role::Consumer => {
            let (provider, _session) = consumer(&connect, &args.service).await?;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => print_pick(&provider),
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            provider.close().await;
        }
        Role::Demo => {
            let (_d1, dying) = provide(&connect, &args.service, "api-1", 8081).await?;
            let (d2, s2) = provide(&connect, &args.service, "api-2", 8082).await?;
            let (provider, session) = consumer(&connect, &args.service).await?;
            for _ in 0..4 {
                print_pick(&provider);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            println!("[provider api-1] dies (its session ends without unregistering)");
            dying.close().await?;
            let mut changes = provider.cache().changes();
            while changes.borrow_and_update().iter().any(|i| i.id == "api-1") {
                changes.changed().await?;
            }
            for _ in 0..3 {
                print_pick(&provider);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            provider.close().await;
            d2.close().await?;
            s2.close().await?;
            session.close().await?;
        }
    }
    Ok(())
}
