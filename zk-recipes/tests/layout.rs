//! Node layout: our lock and latch nodes have Curator's names, sort with Curator's rule
//! (`fixForSorting`: the part after `lock-`, protection prefix ignored), and a Curator-style
//! node written by another (e.g. Java) process takes its place in our queue.

mod support;

use std::time::Duration;

use support::*;
use zk_client::CreateMode;
use zk_recipes::mutex::LOCK_NAME;
use zk_recipes::nodes::{sort_key, sorted_children};
use zk_recipes::{LeaderLatch, Mutex};

const LOCK: &str = "/layout/lock";

/// `_c_<uuid>-<name>NNNNNNNNNN`.
fn assert_curator_name(node: &str, name: &str) {
    let rest = node.strip_prefix("_c_").expect("protected prefix");
    let (uuid, rest) = rest.split_at(36);
    uuid::Uuid::parse_str(uuid).expect("a uuid");
    let digits = rest
        .strip_prefix('-')
        .and_then(|r| r.strip_prefix(name))
        .expect("lock name after the prefix");
    assert_eq!(digits.len(), 10, "{node}");
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "{node}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_nodes_have_curators_names_and_sort_by_sequence() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let holder = Mutex::new(c.clone(), LOCK).unwrap();
    let guard = holder.acquire().await.unwrap();
    // Four waiters queue one after the other.
    let mut queued = vec![guard.node_path().rsplit('/').next().unwrap().to_owned()];
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let m = Mutex::new(c.clone(), LOCK).unwrap();
        let mut stats = m.wait_stats();
        tasks.push(tokio::spawn(async move {
            let g = m.acquire().await.unwrap();
            g.release().await.unwrap();
        }));
        within("queued", stats.wait_for(|s| s.watches_set >= 1))
            .await
            .unwrap();
        let children = c.get_children(LOCK).await.unwrap();
        let new = children
            .into_iter()
            .find(|n| !queued.contains(n))
            .expect("the new node");
        queued.push(new);
    }
    for n in &queued {
        assert_curator_name(n, LOCK_NAME);
    }
    // Queue order (creation order) is the order of Curator's sort key...
    let mut by_key = queued.clone();
    by_key.sort_by(|a, b| sort_key(a, LOCK_NAME).cmp(sort_key(b, LOCK_NAME)));
    assert_eq!(by_key, queued);
    // ...which is what the recipe uses, whatever the random UUID prefixes say.
    assert_eq!(holder.participant_nodes().await.unwrap(), queued);
    assert_eq!(sorted_children(queued.clone(), LOCK_NAME), queued);
    guard.release().await.unwrap();
    for t in tasks {
        within("waiters", t).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_curator_style_node_from_another_process_holds_our_lock() {
    let server = server().await;
    let ours = client(&server.connect_string()).await;
    let java = client(&server.connect_string()).await;
    // What Curator's InterProcessMutex creates: a protected ephemeral sequential `lock-`
    // node, its name built with a uuid of its own (here: by hand, not by our protected mode).
    let name = format!("{LOCK}/_c_{}-lock-", uuid::Uuid::new_v4());
    let foreign = java
        .create(&name)
        .mode(CreateMode::EphemeralSequential)
        .creating_parent_containers_if_needed()
        .await
        .unwrap()
        .path;
    let mutex = Mutex::new(ours.clone(), LOCK).unwrap();
    assert!(mutex
        .acquire_timeout(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());
    let mut stats = mutex.wait_stats();
    let task = tokio::spawn(async move {
        let g = mutex.acquire().await.unwrap();
        let node = g.node_path().to_owned();
        g.release().await.unwrap();
        node
    });
    within("queued", stats.wait_for(|s| s.watches_set >= 2))
        .await
        .unwrap();
    java.delete(&foreign).await.unwrap();
    let node = within("acquired after the foreign holder left", task)
        .await
        .unwrap();
    assert!(sort_key(&node, LOCK_NAME) > sort_key(&foreign, LOCK_NAME));
}

#[tokio::test]
async fn latch_nodes_have_curators_names_and_hold_the_participant_id() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let latch = LeaderLatch::new(c.clone(), "/layout/leader", "node-7").unwrap();
    latch.start().unwrap();
    within("leadership", latch.await_leadership())
        .await
        .unwrap();
    let path = latch.our_path().unwrap();
    assert_curator_name(path.rsplit('/').next().unwrap(), "latch-");
    let (data, stat) = c.get_data(&path).await.unwrap();
    assert_eq!(data, b"node-7");
    assert_eq!(stat.ephemeral_owner, c.session_id());
    latch.close().await.unwrap();
}
