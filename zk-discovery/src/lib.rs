//! Service registration and discovery compatible with Apache Curator's `curator-x-discovery`:
//! Rust, Java (Curator) and other processes sharing a base path see each other's instances.
//!
//! * [`ServiceDiscovery`] — registers this process's instances (kept registered across
//!   reconnects and session loss, never resurrected after unregister), updates them in place,
//!   queries everyone's.
//! * [`ServiceCache`] — the live instances of one service, kept current by a watch.
//! * [`ServiceProvider`] — picks one instance per call with a [`ProviderStrategy`]
//!   ([`RoundRobin`], [`Random`], [`Sticky`]), instance filters and a [`DownInstancePolicy`]
//!   (instances with recent errors are left out for a while).
//! * [`ServiceInstance`] and its builder — one registration, with Curator's fields and
//!   defaults; [`ServiceType`] decides the znode kind.
//! * [`UriSpec`] — Curator's URI template (`{scheme}://{address}:{port}`).
//! * [`JsonInstanceSerializer`] ([`json`]) — the stored JSON, byte-for-byte what Curator's
//!   Jackson serializer writes, in Curator's *compatible* mode (no `enabled` field, the
//!   default) or *full* mode; [`JavaPayload`] writes payloads Java processes can read.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use zk_client::Client;
//! use zk_discovery::{ServiceDiscovery, ServiceInstance, UriSpec};
//!
//! let client = Client::connect("127.0.0.1:2181")?;
//! let discovery = ServiceDiscovery::<String>::builder(client).build()?;
//! discovery
//!     .register(
//!         ServiceInstance::builder("payments")
//!             .port(8080)
//!             .payload("eu-west-1".to_owned())
//!             .uri_spec(UriSpec::parse("{scheme}://{address}:{port}")?)
//!             .build()?,
//!     )
//!     .await?;
//!
//! let provider = discovery.service_provider("payments").build()?;
//! provider.start().await?;
//! if let Some(instance) = provider.get_instance() {
//!     println!("calling {}", instance.build_uri_spec());
//! }
//! discovery.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # ZooKeeper layout (Curator's)
//!
//! ```text
//! <basePath>                      container
//! └── <service name>              container   (ServiceInstance::name)
//!     └── <instance id>           data = the instance as JSON (ServiceInstance::id)
//! ```
//!
//! The instance node is EPHEMERAL for [`ServiceType::Dynamic`], EPHEMERAL_SEQUENTIAL for
//! [`ServiceType::DynamicSequential`] (protected: `_c_<uuid>-<instance id><sequence>`, where
//! Curator writes `<instance id><sequence>`; readers only look at the JSON) and PERSISTENT
//! otherwise ([`ServiceType::is_ephemeral`],
//! [`ServiceType::is_sequential`]). Names and ids are validated as single node names, so Rust
//! and Java processes sharing a base path see each other's instances.
//!
//! # The data model, without ZooKeeper
//!
//! ```
//! use zk_discovery::{
//!     JsonInstanceSerializer, ProviderStrategy, RoundRobin, SerializationMode, ServiceInstance,
//!     UriSpec,
//! };
//!
//! # fn main() -> zk_discovery::Result<()> {
//! // Describe this process's instance of the "payments" service.
//! let instance = ServiceInstance::builder("payments")
//!     .id("payments-1")
//!     .address("10.0.0.7")
//!     .port(8005)
//!     .payload("eu-west-1".to_owned())
//!     .uri_spec(UriSpec::parse("{scheme}://{address}:{port}")?)
//!     .build()?;
//! assert_eq!(instance.build_uri_spec(), "http://10.0.0.7:8005");
//!
//! // What would be stored in /services/payments/payments-1.
//! let serializer = JsonInstanceSerializer::default(); // Curator's compatible mode
//! let bytes = serializer.serialize(&instance)?;
//! assert!(bytes.starts_with(br#"{"name":"payments","id":"payments-1","address":"10.0.0.7","port":8005,"sslPort":null,"payload":"eu-west-1","#));
//! let read = serializer.deserialize::<String>(&bytes)?;
//! assert_eq!(read, instance);
//! // Curator's full mode also writes `enabled`.
//! let full = JsonInstanceSerializer::new(SerializationMode::Full).serialize(&instance)?;
//! assert!(full.ends_with(br#","enabled":true}"#));
//!
//! // Pick among the live instances.
//! let other = ServiceInstance { id: "payments-2".to_owned(), ..read };
//! let instances = vec![instance, other];
//! let strategy = RoundRobin::new();
//! let picks: Vec<&str> = (0..3)
//!     .filter_map(|_| strategy.pick(&instances))
//!     .map(|i| i.id.as_str())
//!     .collect();
//! assert_eq!(picks, ["payments-1", "payments-2", "payments-1"]);
//! # Ok(())
//! # }
//! ```

mod address;
mod discovery;
pub mod down_instance;
mod error;
mod instance;
pub mod json;
mod provider;
mod service_cache;
mod service_type;
pub mod strategy;
pub mod uri_spec;

pub use address::{default_address, local_address, FALLBACK_ADDRESS};
pub use discovery::{Payload, ServiceDiscovery, ServiceDiscoveryBuilder, DEFAULT_BASE_PATH};
pub use down_instance::{DownInstancePolicy, DownInstances};
pub use error::{Error, Result};
pub use instance::{ServiceInstance, ServiceInstanceBuilder};
pub use json::{InstanceSerializer, JavaPayload, JsonInstanceSerializer, SerializationMode};
pub use provider::{ServiceProvider, ServiceProviderBuilder};
pub use service_cache::ServiceCache;
pub use service_type::ServiceType;
pub use strategy::{ProviderStrategy, Random, RoundRobin, Sticky};
pub use uri_spec::{UriPart, UriSpec};
