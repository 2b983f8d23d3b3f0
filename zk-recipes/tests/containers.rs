//! Recipes create their parents as container nodes (CURATOR.md §5.12): once a mutex, a
//! semaphore and a leader latch are done with, the server reaps their empty parents, all the
//! way up, instead of leaving them behind forever.

mod support;

use std::time::Duration;

use support::*;
use zk_client::Client;
use zk_recipes::{LeaderLatch, Mutex, Semaphore};
use zk_server::TestingServer;

/// Waits (on exists watches) until `path` is gone.
async fn wait_gone(client: &Client, path: &str) {
    within(&format!("{path} to be reaped"), async {
        loop {
            let (stat, watch) = client.exists(path).watched().await.expect("exists");
            if stat.is_none() {
                return;
            }
            watch.await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_recipe_parents_are_reaped() {
    let server = TestingServer::builder()
        .container_check_interval_ms(100)
        .start()
        .await
        .expect("start the testing server");
    let client = client(&server.connect_string()).await;

    let mutex = Mutex::new(client.clone(), "/apps/jobs/lock").unwrap();
    mutex.acquire().await.unwrap().release().await.unwrap();
    let semaphore = Semaphore::new(client.clone(), "/apps/jobs/slots", 2).unwrap();
    for lease in semaphore.acquire(2).await.unwrap() {
        lease.release().await.unwrap();
    }
    let latch = LeaderLatch::new(client.clone(), "/apps/jobs/leader", "a").unwrap();
    latch.start().unwrap();
    assert!(latch
        .await_leadership_timeout(Duration::from_secs(10))
        .await
        .unwrap());
    latch.close().await.unwrap();

    for path in [
        "/apps/jobs/lock",
        "/apps/jobs/slots",
        "/apps/jobs/leader",
        "/apps/jobs",
        "/apps",
    ] {
        wait_gone(&client, path).await;
    }
}
