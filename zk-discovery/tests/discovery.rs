//! ServiceDiscovery, ServiceCache and ServiceProvider against the embedded server: instances
//! follow their sessions, re-register after expiry, never resurrect after unregister, update
//! in place; the provider's strategies and down-instance policy.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use zk_client::{Client, ConnectionState, ConnectionStates, RetryNTimes};
use zk_discovery::{
    DownInstancePolicy, JsonInstanceSerializer, Random, RoundRobin, SerializationMode,
    ServiceDiscovery, ServiceInstance, ServiceType, Sticky,
};
use zk_server::{FaultProxy, TestingServer};

const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
const PATIENCE: Duration = Duration::from_secs(30);

async fn client_with(connect: &str, connection_timeout: Duration) -> Client {
    let client = Client::builder()
        .connect_string(connect)
        .session_timeout(SESSION_TIMEOUT)
        .connection_timeout(connection_timeout)
        .retry_policy(RetryNTimes::new(3, Duration::from_millis(50)))
        .build()
        .expect("client");
    client
        .block_until_connected(PATIENCE)
        .await
        .expect("connect");
    client
}

async fn client(connect: &str) -> Client {
    client_with(connect, Duration::from_secs(10)).await
}

async fn within<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for: {what}"))
}

async fn wait_state(states: &mut ConnectionStates, wanted: ConnectionState) {
    use futures::StreamExt;
    within(&format!("{wanted:?}"), PATIENCE, async {
        while let Some(s) = states.next().await {
            if s == wanted {
                return;
            }
        }
        panic!("state stream ended");
    })
    .await
}

fn instance(name: &str, id: &str, port: u16, payload: &str) -> ServiceInstance<String> {
    ServiceInstance::builder(name)
        .id(id)
        .address("127.0.0.1")
        .port(port)
        .payload(payload.to_owned())
        .build()
        .expect("instance")
}

fn ids(list: &[ServiceInstance<String>]) -> Vec<String> {
    list.iter().map(|i| i.id.clone()).collect()
}

/// Waits until the cache's list satisfies `pred`.
async fn wait_list(
    rx: &mut tokio::sync::watch::Receiver<Arc<Vec<ServiceInstance<String>>>>,
    limit: Duration,
    what: &str,
    pred: impl Fn(&[ServiceInstance<String>]) -> bool,
) {
    within(what, limit, async {
        loop {
            if pred(&rx.borrow_and_update()) {
                return;
            }
            rx.changed().await.expect("cache open");
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_query_and_the_stored_json() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .base_path("/svc")
        .this_instance(instance("payments", "p1", 8001, "eu"))
        .build()
        .expect("discovery");
    discovery.start().await.expect("start");
    discovery
        .register(instance("payments", "p2", 8002, "us"))
        .await
        .expect("register");
    discovery
        .register(instance("search", "s1", 9001, "eu"))
        .await
        .expect("register");
    // Registering the id again re-registers it with the new data (Curator's
    // "register/re-register/update"); under another name it is refused.
    let s1_created = c.exists("/svc/search/s1").await.unwrap().unwrap().czxid;
    discovery
        .register(instance("search", "s1", 9001, "x"))
        .await
        .expect("re-register");
    let (data, stat) = c.get_data("/svc/search/s1").await.expect("node");
    let stored: ServiceInstance<String> = JsonInstanceSerializer::default()
        .deserialize(&data)
        .expect("an instance");
    assert_eq!(stored.payload.as_deref(), Some("x"));
    assert_eq!(stat.czxid, s1_created, "updated in place");
    let local = discovery.registered();
    let s1 = local.iter().find(|i| i.id == "s1").expect("registered");
    assert_eq!(s1.payload.as_deref(), Some("x"));
    assert!(matches!(
        discovery
            .register(instance("payments", "s1", 9001, "x"))
            .await,
        Err(zk_discovery::Error::AlreadyRegistered(_))
    ));

    assert_eq!(
        discovery.query_for_names().await.expect("names"),
        ["payments", "search"]
    );
    let found = discovery
        .query_for_instances("payments")
        .await
        .expect("instances");
    assert_eq!(ids(&found), ["p1", "p2"]);
    assert_eq!(found[1].payload.as_deref(), Some("us"));
    assert_eq!(
        discovery
            .query_for_instance("payments", "nope")
            .await
            .expect("query"),
        None
    );

    // Curator's layout and JSON: an ephemeral node at basePath/name/id holding exactly what
    // Curator's (compatible-mode) serializer writes; parents are containers.
    let (data, stat) = c.get_data("/svc/payments/p1").await.expect("node");
    assert_eq!(stat.ephemeral_owner, c.session_id());
    assert_eq!(
        data,
        JsonInstanceSerializer::default()
            .serialize(&found[0])
            .expect("json")
    );
    assert!(String::from_utf8_lossy(&data).starts_with(
        r#"{"name":"payments","id":"p1","address":"127.0.0.1","port":8001,"sslPort":null,"payload":"eu","registrationTimeUTC":"#
    ));
    let (_, parent) = c.get_data("/svc/payments").await.expect("parent");
    assert_eq!(parent.ephemeral_owner, 0);

    discovery.close().await.expect("close");
    assert_eq!(
        c.get_children("/svc/payments")
            .await
            .map(|c| c.len())
            .unwrap_or(0),
        0
    );
    assert!(matches!(
        discovery.register(instance("x", "y", 1, "")).await,
        Err(zk_discovery::Error::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_providers_instance_leaves_the_cache_within_the_session_timeout() {
    let server = TestingServer::start().await.expect("server");
    let proxy = FaultProxy::start(&server.connect_string())
        .await
        .expect("proxy");
    let provider_client = client(&proxy.connect_string()).await;
    let consumer = client(&server.connect_string()).await;
    let provider = ServiceDiscovery::<String>::builder(provider_client.clone())
        .build()
        .expect("discovery");
    provider
        .register(instance("api", "a1", 1, ""))
        .await
        .expect("register");
    let consumer_discovery = ServiceDiscovery::<String>::builder(consumer.clone())
        .build()
        .expect("discovery");
    let cache = consumer_discovery.service_cache("api").expect("cache");
    cache.start().await.expect("cache start");
    assert_eq!(ids(&cache.instances()), ["a1"]);

    // The provider's process "dies": its network goes dead and its session expires.
    let mut rx = cache.changes();
    proxy.set_mode(zk_server::FaultMode::Blackhole);
    wait_list(
        &mut rx,
        SESSION_TIMEOUT + Duration::from_secs(1),
        "the dead instance to leave the cache",
        |l| l.is_empty(),
    )
    .await;
    drop(provider);
    // Receivers learn that the cache closed (a `while rx.changed().await.is_ok()` loop ends).
    let mut later = cache.changes();
    cache.close().await;
    for rx in [&mut rx, &mut later] {
        let ended = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registered_after_session_expiry_and_updated_in_place() {
    let server = TestingServer::start().await.expect("server");
    let provider_client = client(&server.connect_string()).await;
    let consumer = client(&server.connect_string()).await;
    let provider = ServiceDiscovery::<String>::builder(provider_client.clone())
        .build()
        .expect("discovery");
    provider
        .register(instance("api", "a1", 1, "v1"))
        .await
        .expect("register");
    let cache = ServiceDiscovery::<String>::builder(consumer.clone())
        .build()
        .expect("discovery")
        .service_cache("api")
        .expect("cache");
    cache.start().await.expect("start");

    // Update: the cache sees the new payload and the instance never disappears meanwhile.
    let mut rx = cache.changes();
    let (_, before) = consumer.get_data("/services/api/a1").await.expect("node");
    let mut updated = instance("api", "a1", 1, "v2");
    updated.registration_time_utc = provider.registered()[0].registration_time_utc;
    provider.update(updated).await.expect("update");
    // In place: the same node (a delete and re-create would have a new czxid).
    let (_, after) = consumer.get_data("/services/api/a1").await.expect("node");
    assert_eq!(after.czxid, before.czxid);
    assert!(after.mzxid > before.mzxid);
    within("the update in the cache", PATIENCE, async {
        loop {
            let list = rx.borrow_and_update().clone();
            assert_eq!(
                ids(&list),
                ["a1"],
                "the instance must never disappear during an update"
            );
            if list[0].payload.as_deref() == Some("v2") {
                return;
            }
            rx.changed().await.expect("open");
        }
    })
    .await;
    assert!(matches!(
        provider.update(instance("api", "other", 1, "")).await,
        Err(zk_discovery::Error::NotRegistered(_))
    ));
    // An update cannot move the node to another service, or make it persistent.
    assert!(matches!(
        provider.update(instance("web", "a1", 1, "")).await,
        Err(zk_discovery::Error::InvalidInstance { field: "name", .. })
    ));
    let mut retyped = instance("api", "a1", 1, "");
    retyped.service_type = ServiceType::Static;
    assert!(matches!(
        provider.update(retyped).await,
        Err(zk_discovery::Error::InvalidInstance {
            field: "serviceType",
            ..
        })
    ));

    // The provider's session expires: the instance goes, then comes back with the new
    // session, with the updated payload.
    let old_session = provider_client.session_id();
    let mut states = provider_client.connection_states();
    assert!(server.expire_session(old_session).await);
    wait_state(&mut states, ConnectionState::Lost).await;
    within("re-registration by the new session", PATIENCE, async {
        loop {
            if let Ok((data, stat)) = consumer.get_data("/services/api/a1").await {
                if stat.ephemeral_owner != old_session {
                    assert!(String::from_utf8_lossy(&data).contains(r#""payload":"v2""#));
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    wait_list(&mut rx, PATIENCE, "the cache to show it again", |l| {
        ids(l) == ["a1"] && l[0].payload.as_deref() == Some("v2")
    })
    .await;
    cache.close().await;
    provider.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregister_while_disconnected_does_not_resurrect() {
    let server = TestingServer::start().await.expect("server");
    let proxy = FaultProxy::start(&server.connect_string())
        .await
        .expect("proxy");
    let provider_client = client_with(&proxy.connect_string(), Duration::from_millis(500)).await;
    let observer = client(&server.connect_string()).await;
    let provider = ServiceDiscovery::<String>::builder(provider_client.clone())
        .build()
        .expect("discovery");
    provider
        .register(instance("api", "gone", 1, ""))
        .await
        .expect("register");
    provider
        .register(instance("api", "kept", 2, ""))
        .await
        .expect("register");

    let mut states = provider_client.connection_states();
    proxy.down();
    wait_state(&mut states, ConnectionState::Suspended).await;
    // The delete cannot reach the server now: unregister hands it to a guaranteed delete.
    provider.unregister("gone").await.expect("unregister");
    proxy.up();
    wait_state(&mut states, ConnectionState::Reconnected).await;
    within("the guaranteed delete", PATIENCE, async {
        while observer
            .exists("/services/api/gone")
            .await
            .expect("exists")
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Another reconnect (re-registration runs again): still gone, the other one still there.
    proxy.cut();
    wait_state(&mut states, ConnectionState::Reconnected).await;
    provider
        .update(instance("api", "kept", 2, "touched"))
        .await
        .expect("update");
    assert_eq!(observer.exists("/services/api/gone").await, Ok(None));
    assert!(observer
        .exists("/services/api/kept")
        .await
        .expect("exists")
        .is_some());
    provider.close().await.expect("close");
}

/// A process restarted with the same instance id while its old session is still alive (cut
/// off, not yet expired): registering replaces the old node at once, as Curator does, instead
/// of waiting for the old session's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_replaces_its_old_sessions_node_at_once() {
    let server = TestingServer::start().await.expect("server");
    let proxy = FaultProxy::start(&server.connect_string())
        .await
        .expect("proxy");
    let old_client = Client::builder()
        .connect_string(proxy.connect_string())
        .session_timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    old_client
        .block_until_connected(PATIENCE)
        .await
        .expect("connect");
    let old = ServiceDiscovery::<String>::builder(old_client.clone())
        .build()
        .expect("discovery");
    old.register(instance("api", "host-1", 1, "old run"))
        .await
        .expect("register");
    // Under a service node that lets anyone create but nobody delete, the old node cannot
    // be replaced: registering there fails with the server's refusal rather than wait.
    let no_delete = zk_client::Acl::new(
        zk_client::Perms::READ | zk_client::Perms::CREATE | zk_client::Perms::ADMIN,
        zk_client::Id::anyone(),
    );
    old_client
        .create("/services/locked")
        .acl(vec![no_delete])
        .await
        .expect("create");
    old.register(instance("locked", "host-2", 1, "old run"))
        .await
        .expect("register");
    // The old process dies without closing: its session lives on for a minute.
    proxy.set_mode(zk_server::FaultMode::Blackhole);

    let new_client = client(&server.connect_string()).await;
    let new = ServiceDiscovery::<String>::builder(new_client.clone())
        .build()
        .expect("discovery");
    within(
        "registering over the old session's node",
        Duration::from_secs(20),
        new.register(instance("api", "host-1", 1, "new run")),
    )
    .await
    .expect("register");
    let (_, stat) = new_client
        .get_data("/services/api/host-1")
        .await
        .expect("the node");
    assert_eq!(stat.ephemeral_owner, new_client.session_id());
    let found = new
        .query_for_instance("api", "host-1")
        .await
        .expect("query");
    assert_eq!(found.map(|i| i.payload), Some(Some("new run".to_owned())));
    let refused = within(
        "registering where the old node cannot be deleted",
        Duration::from_secs(20),
        new.register(instance("locked", "host-2", 1, "new run")),
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(zk_discovery::Error::Zk(zk_client::Error::NoAuth))
        ),
        "{refused:?}"
    );
    assert_eq!(new.registered().len(), 1);
    new.close().await.expect("close");
}

/// Two live sessions registering one id (a duplicate, or a restart racing its old session):
/// the newer registration replaces the older one's node, and the older one, following its
/// instance (watch_instances), does not take the newcomer's data for its own; when the
/// newcomer unregisters, the older registration comes back with its own data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_registration_keeps_its_own_data() {
    let server = TestingServer::start().await.expect("server");
    let proxy = FaultProxy::start(&server.connect_string())
        .await
        .expect("proxy");
    let a_client = client(&proxy.connect_string()).await;
    let a = ServiceDiscovery::<String>::builder(a_client.clone())
        .watch_instances(true)
        .build()
        .expect("discovery");
    a.register(instance("api", "dup", 1, "from a"))
        .await
        .expect("register");
    let mut a_states = a_client.connection_states();

    // B replaces A's node while A cannot race it back.
    proxy.set_mode(zk_server::FaultMode::Blackhole);
    let b_client = client(&server.connect_string()).await;
    let b = ServiceDiscovery::<String>::builder(b_client.clone())
        .build()
        .expect("discovery");
    within(
        "B registers over A",
        PATIENCE,
        b.register(instance("api", "dup", 1, "from b")),
    )
    .await
    .expect("register");
    proxy.set_mode(zk_server::FaultMode::Forward);
    proxy.cut();
    wait_state(&mut a_states, ConnectionState::Reconnected).await;
    // Let A's instance cache read B's node.
    a_client.sync("/services/api/dup").await.expect("sync");
    let (_, stat) = a_client
        .get_data("/services/api/dup")
        .await
        .expect("B's node");
    assert_eq!(stat.ephemeral_owner, b_client.session_id());
    assert_eq!(a.registered()[0].payload.as_deref(), Some("from a"));

    b.unregister("dup").await.expect("unregister");
    let back = within("A's node again", PATIENCE, async {
        loop {
            if let Ok((_, stat)) = b_client.get_data("/services/api/dup").await {
                if stat.ephemeral_owner == a_client.session_id() {
                    return b.query_for_instance("api", "dup").await.expect("query");
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(back.and_then(|i| i.payload).as_deref(), Some("from a"));
    a.close().await.expect("close");
    b.close().await.expect("close");
}

/// A registration that can never be created (a base path we may not write) fails with the
/// server's error instead of waiting forever, and leaves nothing registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_where_we_may_not_write_fails_with_noauth() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    c.create("/locked")
        .acl(zk_client::Acl::read_unsafe())
        .await
        .expect("create");
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .base_path("/locked/services")
        .build()
        .expect("discovery");
    for _ in 0..2 {
        let result = within(
            "register",
            PATIENCE,
            discovery.register(instance("api", "a1", 1, "")),
        )
        .await;
        assert!(
            matches!(
                result,
                Err(zk_discovery::Error::Zk(zk_client::Error::NoAuth))
            ),
            "{result:?}"
        );
        assert!(discovery.registered().is_empty());
    }
    discovery.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_strategies_and_down_instances() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .build()
        .expect("discovery");
    for (i, id) in ["i1", "i2", "i3"].iter().enumerate() {
        discovery
            .register(instance("svc", id, 1000 + i as u16, ""))
            .await
            .expect("register");
    }

    // Round robin: exact rotation over 999 picks.
    let rr = discovery.service_provider("svc").build().expect("provider");
    rr.start().await.expect("start");
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut order = Vec::new();
    for _ in 0..999 {
        let id = rr.get_instance().expect("an instance").id;
        order.push(id.clone());
        *counts.entry(id).or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 333), "{counts:?}");
    assert!(order
        .windows(3)
        .all(|w| w[0] != w[1] && w[1] != w[2] && w[0] != w[2]));

    // Random: within ±10% of even over 9,000 picks.
    let random = discovery
        .service_provider("svc")
        .strategy(Random::new())
        .build()
        .expect("provider");
    random.start().await.expect("start");
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..9000 {
        *counts
            .entry(random.get_instance().expect("one").id)
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 3);
    assert!(
        counts.values().all(|&n| (2700..=3300).contains(&n)),
        "{counts:?}"
    );

    // Sticky: the same instance until it is gone.
    let sticky = discovery
        .service_provider("svc")
        .strategy(Sticky::new(RoundRobin::new()))
        .build()
        .expect("provider");
    sticky.start().await.expect("start");
    let first = sticky.get_instance().expect("one").id;
    assert!((0..100).all(|_| sticky.get_instance().map(|i| i.id) == Some(first.clone())));
    let mut rx = sticky.cache().changes();
    discovery.unregister(&first).await.expect("unregister");
    within("the cache to drop it", PATIENCE, async {
        while rx.borrow_and_update().iter().any(|i| i.id == first) {
            rx.changed().await.expect("open");
        }
    })
    .await;
    let second = sticky.get_instance().expect("one").id;
    assert_ne!(second, first);
    assert!((0..100).all(|_| sticky.get_instance().map(|i| i.id) == Some(second.clone())));

    // Down instances: out after 2 errors, back after the window; filters apply too.
    let window = Duration::from_millis(300);
    let guarded = discovery
        .service_provider("svc")
        .filter(|i| i.service_type == ServiceType::Dynamic)
        .down_instance_policy(DownInstancePolicy {
            timeout: window,
            error_threshold: 2,
        })
        .build()
        .expect("provider");
    guarded.start().await.expect("start");
    let all = guarded.get_all_instances();
    assert_eq!(all.len(), 2);
    let victim = all[0].clone();
    guarded.note_error(&victim);
    assert_eq!(
        guarded.get_all_instances().len(),
        2,
        "one error is below the threshold"
    );
    guarded.note_error(&victim);
    let left = guarded.get_all_instances();
    assert_eq!(ids(&left), [all[1].id.clone()]);
    assert!((0..10).all(|_| guarded.get_instance().map(|i| i.id) == Some(all[1].id.clone())));
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    assert_eq!(
        guarded.get_all_instances().len(),
        2,
        "readmitted after the window"
    );

    for p in [&rr, &random, &sticky, &guarded] {
        p.close().await;
    }
    discovery.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_instances_keep_an_operators_change_across_re_registration() {
    let server = TestingServer::start().await.expect("server");
    let provider_client = client(&server.connect_string()).await;
    let operator = client(&server.connect_string()).await;
    let provider = ServiceDiscovery::<String>::builder(provider_client.clone())
        .watch_instances(true)
        .build()
        .expect("discovery");
    provider
        .register(instance("api", "w1", 1, "original"))
        .await
        .expect("register");

    // An operator rewrites the instance (another payload).
    let path = "/services/api/w1";
    let serializer = JsonInstanceSerializer::default();
    let mut changed = provider.registered()[0].clone();
    changed.payload = Some("set by the operator".to_owned());
    operator
        .set_data(path, serializer.serialize(&changed).expect("json"))
        .await
        .expect("operator write");
    within("the local copy to follow", PATIENCE, async {
        while provider.registered()[0].payload.as_deref() != Some("set by the operator") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // The provider's session expires: it re-registers with the operator's version.
    let old_session = provider_client.session_id();
    assert!(server.expire_session(old_session).await);
    within("re-registered with the operator's data", PATIENCE, async {
        loop {
            if let Ok((data, stat)) = operator.get_data(path).await {
                if stat.ephemeral_owner != old_session {
                    let back: ServiceInstance<String> =
                        serializer.deserialize(&data).expect("an instance");
                    assert_eq!(back.payload.as_deref(), Some("set by the operator"));
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    provider.close().await.expect("close");
}

/// The children of `path` with their stats.
async fn nodes(client: &Client, path: &str) -> Vec<(String, zk_client::Stat)> {
    let mut out = Vec::new();
    for child in client.get_children(path).await.expect("children") {
        let (_, stat) = client
            .get_data(&format!("{path}/{child}"))
            .await
            .expect("node");
        out.push((child, stat));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_permanent_and_dynamic_sequential_registrations() {
    let server = TestingServer::start().await.expect("server");
    let provider_client = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let provider = ServiceDiscovery::<String>::builder(provider_client.clone())
        .build()
        .expect("discovery");
    let typed = |id: &str, service_type| {
        let mut i = instance("jobs", id, 7000, id);
        i.service_type = service_type;
        i
    };
    provider
        .register(typed("st", ServiceType::Static))
        .await
        .expect("register");
    provider
        .register(typed("pe", ServiceType::Permanent))
        .await
        .expect("register");
    provider
        .register(typed("ds", ServiceType::DynamicSequential))
        .await
        .expect("register");

    // STATIC and PERMANENT: persistent nodes named by id; DYNAMIC_SEQUENTIAL: a protected
    // ephemeral-sequential node, `_c_<uuid>-`, the id, a 10-digit sequence number.
    let listed = nodes(&observer, "/services/jobs").await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let (ds_name, ds_stat) = &listed[0];
    let unprotected = zk_client::protected::strip_protected_prefix(ds_name);
    assert!(
        zk_client::protected::is_protected(ds_name)
            && unprotected.len() == 12
            && unprotected.starts_with("ds")
            && unprotected[2..].bytes().all(|b| b.is_ascii_digit()),
        "{ds_name}"
    );
    assert_eq!(ds_stat.ephemeral_owner, provider_client.session_id());
    assert_eq!(
        (listed[1].0.as_str(), listed[1].1.ephemeral_owner),
        ("pe", 0)
    );
    assert_eq!(
        (listed[2].0.as_str(), listed[2].1.ephemeral_owner),
        ("st", 0)
    );
    let found = provider.query_for_instances("jobs").await.expect("query");
    let mut found_ids = ids(&found);
    found_ids.sort();
    assert_eq!(found_ids, ["ds", "pe", "st"]);

    // A new session: the sequential instance is registered again under a new number; the
    // persistent ones stay as they are.
    let old_session = provider_client.session_id();
    let mut states = provider_client.connection_states();
    assert!(server.expire_session(old_session).await);
    wait_state(&mut states, ConnectionState::Lost).await;
    within("the sequential instance back", PATIENCE, async {
        loop {
            let now = nodes(&observer, "/services/jobs").await;
            if let Some((name, stat)) = now.iter().find(|(n, _)| n.starts_with("_c_")) {
                if stat.ephemeral_owner != old_session {
                    assert_ne!(name, ds_name, "a new sequence number");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(nodes(&observer, "/services/jobs").await.len(), 3);

    // Unregistering the sequential instance deletes its current node.
    provider.unregister("ds").await.expect("unregister");
    let left: Vec<String> = nodes(&observer, "/services/jobs")
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(left, ["pe", "st"]);

    // The provider's session ends without unregistering (a crash): the persistent
    // instances outlive it.
    provider_client.close().await.expect("close");
    let others = ServiceDiscovery::<String>::builder(observer.clone())
        .build()
        .expect("discovery");
    let mut left = ids(&others.query_for_instances("jobs").await.expect("query"));
    left.sort();
    assert_eq!(left, ["pe", "st"]);
}

/// A provider never hands out a disabled instance (Curator's provider filters on
/// `isEnabled`), whatever the caller's own filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_never_picks_a_disabled_instance() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .serializer(JsonInstanceSerializer::new(SerializationMode::Full))
        .build()
        .expect("discovery");
    let mut off = instance("svc", "off", 1001, "");
    off.enabled = false;
    for i in [instance("svc", "on", 1000, ""), off] {
        discovery.register(i).await.expect("register");
    }
    let provider = discovery.service_provider("svc").build().expect("provider");
    provider.start().await.expect("start");
    let mut all = provider.cache().changes();
    wait_list(&mut all, PATIENCE, "both instances cached", |l| {
        l.len() == 2
    })
    .await;
    assert_eq!(ids(&provider.get_all_instances()), ["on"]);
    for _ in 0..10 {
        assert_eq!(provider.get_instance().expect("an instance").id, "on");
    }
    provider.close().await;
    discovery.close().await.expect("close");
}

/// A DYNAMIC instance registered where a persistent node already sits (a STATIC
/// registration of the same id left by another run, or an operator's node) replaces it with
/// its ephemeral node, as Curator's register does, instead of waiting for it to go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_registration_replaces_a_persistent_node_at_its_path() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    c.create("/services/svc/d1")
        .creating_parents_if_needed()
        .data(b"left over".to_vec())
        .await
        .expect("leftover");
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .build()
        .expect("discovery");
    within(
        "the registration",
        PATIENCE,
        discovery.register(instance("svc", "d1", 1000, "new")),
    )
    .await
    .expect("register");
    let (data, stat) = c.get_data("/services/svc/d1").await.expect("node");
    assert_eq!(stat.ephemeral_owner, c.session_id(), "an ephemeral of ours");
    let back: ServiceInstance<String> = JsonInstanceSerializer::default()
        .deserialize(&data)
        .expect("an instance");
    assert_eq!(back.payload.as_deref(), Some("new"));
    discovery.close().await.expect("close");
}

/// A discovery with watched instances, dropped without close, stops keeping its instances:
/// the node goes with the session and is not registered again in the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watching_discovery_stops_keeping_its_instances() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .watch_instances(true)
        .build()
        .expect("discovery");
    discovery
        .register(instance("svc", "w1", 1000, ""))
        .await
        .expect("register");
    drop(discovery);

    let mut states = c.connection_states();
    assert!(server.expire_session(c.session_id()).await);
    wait_state(&mut states, ConnectionState::Lost).await;
    wait_state(&mut states, ConnectionState::Reconnected).await;
    // A kept registration comes back at once in the new session; give it ample time.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        observer.exists("/services/svc/w1").await.expect("exists"),
        None,
        "a dropped discovery registered its instance again"
    );
}

/// With watched instances, rapid updates of our own are never undone by the late sight of an
/// earlier one: the node and the local copy end with the last update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_updates_with_watched_instances_end_with_the_last() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .watch_instances(true)
        .build()
        .expect("discovery");
    discovery
        .register(instance("svc", "u1", 1000, "v0"))
        .await
        .expect("register");
    let registered_at = discovery.registered()[0].registration_time_utc;
    let version = |v: usize| {
        let mut i = instance("svc", "u1", 1000, &format!("v{v}"));
        i.registration_time_utc = registered_at;
        i
    };
    for v in 1..=40 {
        discovery.update(version(v)).await.expect("update");
    }
    // Let every event of those writes reach the watcher.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (data, _) = observer.get_data("/services/svc/u1").await.expect("node");
    let stored: ServiceInstance<String> = JsonInstanceSerializer::default()
        .deserialize(&data)
        .expect("an instance");
    assert_eq!(stored.payload.as_deref(), Some("v40"), "the node");
    assert_eq!(
        discovery.registered()[0].payload.as_deref(),
        Some("v40"),
        "the local copy"
    );
    discovery.close().await.expect("close");
}

/// Concurrent updates of one instance end with the node and the local copy agreeing: each
/// update's data is queued for writing in the same step that makes it the local copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_leave_the_node_and_the_local_copy_agreeing() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .build()
        .expect("discovery");
    discovery
        .register(instance("svc", "c1", 1000, "v0"))
        .await
        .expect("register");
    let registered_at = discovery.registered()[0].registration_time_utc;
    for round in 0..2000 {
        let writers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let discovery = discovery.clone();
                tokio::spawn(async move {
                    let mut i = instance("svc", "c1", 1000, &format!("{who}{round}"));
                    i.registration_time_utc = registered_at;
                    discovery.update(i).await.expect("update");
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let (data, _) = observer.get_data("/services/svc/c1").await.expect("node");
        let stored: ServiceInstance<String> = JsonInstanceSerializer::default()
            .deserialize(&data)
            .expect("an instance");
        assert_eq!(
            discovery.registered()[0].payload,
            stored.payload,
            "round {round}: the local copy and the node"
        );
    }
    discovery.close().await.expect("close");
}

/// Closing a discovery closes the caches and providers it made (Curator's close): their
/// receivers end, and no cache can be made from it afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_discovery_closes_its_caches_and_providers() {
    let server = TestingServer::start().await.expect("server");
    let c = client(&server.connect_string()).await;
    let discovery = ServiceDiscovery::<String>::builder(c.clone())
        .build()
        .expect("discovery");
    discovery
        .register(instance("svc", "i1", 1000, ""))
        .await
        .expect("register");
    let provider = discovery.service_provider("svc").build().expect("provider");
    provider.start().await.expect("start");
    let cache = discovery.service_cache("svc").expect("cache");
    cache.start().await.expect("start");
    let mut receivers = [provider.cache().changes(), cache.changes()];
    discovery.close().await.expect("close");
    for rx in &mut receivers {
        let ended = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
    }
    assert!(matches!(
        discovery.service_cache("svc"),
        Err(zk_discovery::Error::Closed)
    ));
    // Closing them again is harmless.
    provider.close().await;
    cache.close().await;
}

/// A close given up on during an outage (a shutdown's timeout) still deletes every instance
/// once the server is back: none is left behind for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_given_up_on_during_an_outage_still_deletes_every_instance() {
    let server = TestingServer::start().await.expect("server");
    let proxy = FaultProxy::start(&server.connect_string())
        .await
        .expect("proxy");
    let provider_client = client_with(&proxy.connect_string(), Duration::from_secs(5)).await;
    let observer = client(&server.connect_string()).await;
    let provider = ServiceDiscovery::<String>::builder(provider_client.clone())
        .build()
        .expect("discovery");
    for id in ["s1", "s2", "s3"] {
        let mut i = instance("kept", id, 1, "");
        i.service_type = ServiceType::Static;
        provider.register(i).await.expect("register");
    }
    assert_eq!(nodes(&observer, "/services/kept").await.len(), 3);
    proxy.down();
    proxy.cut();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), provider.close())
            .await
            .is_err(),
        "the deletes cannot reach the server yet"
    );
    proxy.up();
    within("every instance deleted", PATIENCE, async {
        while !nodes(&observer, "/services/kept").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// A DYNAMIC_SEQUENTIAL registration whose create reply is lost finds its node (protected
/// mode) instead of making a second one that unregister would leave behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequential_registration_whose_reply_is_lost_makes_one_node() {
    let server = TestingServer::start().await.expect("server");
    let proxy = FaultProxy::start(&server.connect_string())
        .await
        .expect("proxy");
    let provider_client = client(&proxy.connect_string()).await;
    let observer = client(&server.connect_string()).await;
    observer
        .create("/services/seq")
        .creating_parents_if_needed()
        .await
        .expect("parent");
    let provider = ServiceDiscovery::<String>::builder(provider_client.clone())
        .build()
        .expect("discovery");
    proxy.set_mode(zk_server::FaultMode::DropReplies);
    let registering = {
        let provider = provider.clone();
        tokio::spawn(async move {
            let mut i = instance("seq", "q", 1, "");
            i.service_type = ServiceType::DynamicSequential;
            provider.register(i).await
        })
    };
    within("the create reaches the server", PATIENCE, async {
        while observer
            .get_children("/services/seq")
            .await
            .expect("children")
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    proxy.set_mode(zk_server::FaultMode::Forward);
    proxy.cut();
    within("registered", PATIENCE, registering)
        .await
        .expect("task")
        .expect("register");
    let listed = nodes(&observer, "/services/seq").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    provider.unregister("q").await.expect("unregister");
    assert!(nodes(&observer, "/services/seq").await.is_empty());
    provider.close().await.expect("close");
}
