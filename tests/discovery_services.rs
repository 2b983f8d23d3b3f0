//! Service discovery against the test target (the embedded server, or Apache ZooKeeper with
//! `ZK_TEST_CONNECT`, as the client suites; scripts/interop.sh runs it against Apache 3.5 to
//! 3.9): instances registered by one process are found and cached by another, leave the cache
//! when unregistered, and come back on the provider's new session after its session expired.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::PATIENCE;
use zk::discovery::{ServiceDiscovery, ServiceInstance};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

fn instance(id: &str, port: u16) -> ServiceInstance<String> {
    ServiceInstance::builder("api")
        .id(id)
        .address("127.0.0.1")
        .port(port)
        .payload(format!("{id}-payload"))
        .build()
        .expect("instance")
}

fn ids(list: &[ServiceInstance<String>]) -> Vec<String> {
    let mut ids: Vec<String> = list.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    ids
}

/// Waits until the cache's list holds exactly the instances `want`.
async fn wait_for(
    changes: &mut tokio::sync::watch::Receiver<Arc<Vec<ServiceInstance<String>>>>,
    want: &[&str],
    what: &str,
) {
    let arrived = tokio::time::timeout(PATIENCE, async {
        while ids(&changes.borrow_and_update()) != want {
            changes.changed().await.expect("the cache is open");
        }
    })
    .await;
    assert!(arrived.is_ok(), "{what}: the cache never held {want:?}");
}

#[tokio::test]
async fn instances_are_found_cached_unregistered_and_re_registered_after_expiry() {
    let env = env_or_skip!();
    let connect = env.connect_string();
    let root = support::unique_root();
    let provider_client = support::connected_client(connect).await;
    let consumer_client = support::connected_client(connect).await;
    let provider = ServiceDiscovery::<String>::builder(provider_client.clone())
        .base_path(format!("{root}/services"))
        .build()
        .unwrap();
    let consumer = ServiceDiscovery::<String>::builder(consumer_client.clone())
        .base_path(format!("{root}/services"))
        .build()
        .unwrap();
    provider.register(instance("a1", 8001)).await.unwrap();
    provider.register(instance("a2", 8002)).await.unwrap();

    let found = consumer.query_for_instances("api").await.unwrap();
    assert_eq!(ids(&found), ["a1", "a2"]);
    assert!(found
        .iter()
        .all(|i| i.payload.as_deref() == Some(&format!("{}-payload", i.id))));
    let cache = consumer.service_cache("api").unwrap();
    cache.start().await.unwrap();
    assert_eq!(ids(&cache.instances()), ["a1", "a2"]);

    let mut changes = cache.changes();
    provider.unregister("a2").await.unwrap();
    wait_for(&mut changes, &["a1"], "after unregister").await;

    // The provider's session expires: its ephemeral instance goes, and the provider
    // registers it again on its new session.
    let old_session = provider_client.session_id();
    support::expire_session(connect, old_session, &provider_client.session_password()).await;
    let node = format!("{root}/services/api/a1");
    let back = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok((_, stat)) = consumer_client.get_data(&node).await {
                if stat.ephemeral_owner != old_session {
                    return stat.ephemeral_owner;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the instance registered again on a new session");
    assert_eq!(back, provider_client.session_id());
    // The cache follows the re-registered node: an update made now reaches it.
    let mut updated = instance("a1", 8001);
    updated.payload = Some("a1-after-expiry".to_owned());
    provider.update(updated).await.unwrap();
    let followed = tokio::time::timeout(PATIENCE, async {
        loop {
            let now = changes.borrow_and_update().clone();
            if ids(&now) == ["a1"] && now[0].payload.as_deref() == Some("a1-after-expiry") {
                return;
            }
            changes.changed().await.expect("the cache is open");
        }
    })
    .await;
    assert!(
        followed.is_ok(),
        "the cache never saw the update after the expiry"
    );

    cache.close().await;
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
    support::remove_tree(&consumer_client, &root).await;
    provider_client.close().await.unwrap();
    consumer_client.close().await.unwrap();
}
