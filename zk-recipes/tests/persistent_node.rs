//! PersistentNode against the embedded server: re-created after a delete and after a session
//! loss, data updates, a foreign node is not stolen, close deletes.

mod support;

use std::time::Duration;

use support::*;
use zk_client::{ConnectionState, CreateMode, Error as ZkError};
use zk_recipes::{Error, PersistentNode};

/// Waits (on watches) until the node at `path` exists with `data`.
async fn wait_data(client: &zk_client::Client, path: &str, data: &[u8]) -> zk_client::Stat {
    within(
        &format!("{path} to hold {:?}", String::from_utf8_lossy(data)),
        async {
            loop {
                match client.get_data(path).watched().await {
                    Ok((d, stat, _)) if d == data => return stat,
                    Ok((_, _, watch)) => {
                        watch.await;
                    }
                    Err(ZkError::NoNode) => {
                        let (stat, watch) = client.exists(path).watched().await.expect("exists");
                        if stat.is_none() {
                            watch.await;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        },
    )
    .await
}

#[tokio::test]
async fn an_ephemeral_node_comes_back_after_delete_and_session_loss() {
    let server = server().await;
    let owner = client(&server.connect_string()).await;
    let other = client(&server.connect_string()).await;
    let node = PersistentNode::builder(owner.clone(), "/pn/a/member", b"v1".to_vec())
        .mode(CreateMode::Ephemeral)
        .build()
        .expect("build");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(PATIENCE)
        .await
        .expect("created"));
    assert_eq!(node.actual_path().as_deref(), Some("/pn/a/member"));
    let first = wait_data(&other, "/pn/a/member", b"v1").await;
    assert_eq!(first.ephemeral_owner, owner.session_id());

    // Deleted by someone else: re-created.
    other.delete("/pn/a/member").await.expect("delete");
    let second = wait_data(&other, "/pn/a/member", b"v1").await;
    assert_ne!(second.czxid, first.czxid);

    // New data reaches the node.
    within("set_data", node.set_data(b"v2".to_vec()))
        .await
        .expect("set_data");
    wait_data(&other, "/pn/a/member", b"v2").await;

    // The session expires: the new session re-creates the node, with the latest data.
    let mut states = owner.connection_states();
    let old_session = owner.session_id();
    assert!(server.expire_session(old_session).await);
    wait_state(&mut states, ConnectionState::Lost).await;
    let third = within("re-created by the new session", async {
        loop {
            let stat = wait_data(&other, "/pn/a/member", b"v2").await;
            if stat.ephemeral_owner != old_session {
                return stat;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(third.ephemeral_owner, owner.session_id());

    node.close().await.expect("close");
    assert_eq!(other.exists("/pn/a/member").await, Ok(None));
    assert!(matches!(node.start(), Err(Error::Closed)));
    other
        .delete("/pn")
        .deleting_children_if_needed()
        .quietly()
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn a_protected_sequential_node_gets_a_new_path_per_creation() {
    let server = server().await;
    let owner = client(&server.connect_string()).await;
    let node = PersistentNode::builder(owner.clone(), "/pn2/worker-", b"w".to_vec())
        .mode(CreateMode::EphemeralSequential)
        .protected()
        .build()
        .expect("build");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(PATIENCE)
        .await
        .expect("created"));
    let first = node.actual_path().expect("path");
    assert!(
        first.starts_with("/pn2/_c_") && first.contains("-worker-"),
        "{first}"
    );
    owner.delete(&first).await.expect("delete");
    let second = within("a new sequential node", async {
        loop {
            if let Some(p) = node.actual_path().filter(|p| *p != first) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(owner.exists(&second).await.expect("exists").is_some());
    assert_eq!(owner.get_children("/pn2").await.expect("children").len(), 1);
    node.close().await.expect("close");
    assert_eq!(
        owner
            .get_children("/pn2")
            .await
            .map(|c| c.len())
            .unwrap_or(0),
        0
    );
}

/// A node deleted right after its creation, before the keeper has set its watch on it, is
/// created again (a watch set on a missing sequential name would never fire).
#[tokio::test]
async fn a_node_deleted_right_after_its_creation_is_created_again() {
    let (server, proxy) = server_behind_a_proxy().await;
    let owner = client(&proxy.connect_string()).await;
    let operator = client(&server.connect_string()).await;
    operator.create("/pn5").await.expect("parent");
    let (_, created) = operator
        .get_children("/pn5")
        .watched()
        .await
        .expect("watch the parent");
    // The owner's replies and requests are slow: the operator deletes the new node before
    // the owner's exists on it reaches the server.
    proxy.set_mode(zk_server::FaultMode::Delay(Duration::from_millis(300)));
    let node = PersistentNode::builder(owner.clone(), "/pn5/worker-", b"w".to_vec())
        .mode(CreateMode::EphemeralSequential)
        .build()
        .expect("build");
    node.start().expect("start");
    within("the first creation", created).await;
    let first = operator.get_children("/pn5").await.expect("children");
    assert_eq!(first.len(), 1);
    operator
        .delete(&format!("/pn5/{}", first[0]))
        .await
        .expect("delete");
    within("a node again", async {
        loop {
            let now = operator.get_children("/pn5").await.expect("children");
            if now.len() == 1 && now != first {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    proxy.set_mode(zk_server::FaultMode::Forward);
    node.close().await.expect("close");
}

#[tokio::test]
async fn another_sessions_node_is_not_stolen() {
    let server = server().await;
    let squatter = client(&server.connect_string()).await;
    let owner = client(&server.connect_string()).await;
    squatter.create("/pn3").await.expect("parent");
    squatter
        .create("/pn3/x")
        .mode(CreateMode::Ephemeral)
        .data("theirs")
        .await
        .expect("squat");
    let node = PersistentNode::builder(owner.clone(), "/pn3/x", b"mine".to_vec())
        .build()
        .expect("build");
    node.start().expect("start");
    assert!(!node
        .wait_for_initial_create(Duration::from_millis(300))
        .await
        .expect("not closed"));
    assert_eq!(
        owner.get_data("/pn3/x").await.map(|(d, _)| d),
        Ok(b"theirs".to_vec())
    );
    // Once the other session's node goes, ours takes its place.
    squatter.close().await.expect("close squatter");
    assert!(node
        .wait_for_initial_create(PATIENCE)
        .await
        .expect("created"));
    let stat = wait_data(&owner, "/pn3/x", b"mine").await;
    assert_eq!(stat.ephemeral_owner, owner.session_id());
    node.close().await.expect("close");
    owner.delete("/pn3").quietly().await.expect("cleanup");
}

#[tokio::test]
async fn a_create_refused_by_an_acl_is_reported_and_tried_again() {
    let server = server().await;
    let owner = client(&server.connect_string()).await;
    // Anyone may read the parent and change its ACL, nobody may create under it.
    let no_create = zk_client::Acl::new(
        zk_client::Perms::READ | zk_client::Perms::ADMIN,
        zk_client::Id::anyone(),
    );
    owner
        .create("/pn4")
        .acl(vec![no_create])
        .await
        .expect("parent");
    let node = PersistentNode::builder(owner.clone(), "/pn4/x", b"mine".to_vec())
        .build()
        .expect("build");
    node.start().expect("start");
    assert_eq!(
        node.wait_for_initial_create(PATIENCE).await,
        Err(zk_recipes::Error::Zk(zk_client::Error::NoAuth))
    );
    // The node keeps trying: once the parent may be written, it is created.
    owner
        .set_acl("/pn4", zk_client::Acl::open_unsafe())
        .await
        .expect("open the parent");
    assert_eq!(node.wait_for_initial_create(PATIENCE).await, Ok(true));
    wait_data(&owner, "/pn4/x", b"mine").await;
    node.close().await.expect("close");
    owner.delete("/pn4").quietly().await.expect("cleanup");
}

#[tokio::test]
async fn bad_arguments_are_refused_before_anything_is_sent() {
    // Nothing listens on port 1: building must fail without any connection.
    let client = zk_client::Client::builder()
        .connect_string("127.0.0.1:1")
        .build()
        .expect("client");
    // A TTL mode without a TTL, and a TTL without a TTL mode.
    for mode in [
        CreateMode::PersistentWithTtl,
        CreateMode::PersistentSequentialWithTtl,
    ] {
        assert!(matches!(
            PersistentNode::builder(client.clone(), "/x", vec![])
                .mode(mode)
                .build(),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        PersistentNode::builder(client.clone(), "/x", vec![])
            .mode(CreateMode::Persistent)
            .ttl(Duration::from_secs(1))
            .build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        PersistentNode::builder(client.clone(), "/x", vec![])
            .protected()
            .build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        PersistentNode::builder(client, "no-slash", vec![]).build(),
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn an_existing_persistent_node_is_adopted_with_our_data() {
    // A persistent node left by an earlier run (or our own create whose reply was lost and
    // whose retry then found NODEEXISTS): adopted at once, not waited on.
    let server = server().await;
    let c = client(&server.connect_string()).await;
    c.create("/pn4")
        .data("old")
        .await
        .expect("left over from an earlier run");
    let node = PersistentNode::builder(c.clone(), "/pn4", b"new".to_vec())
        .mode(CreateMode::Persistent)
        .build()
        .expect("build");
    node.start().expect("start");
    assert!(node
        .wait_for_initial_create(PATIENCE)
        .await
        .expect("not closed"));
    assert_eq!(node.actual_path().as_deref(), Some("/pn4"));
    wait_data(&c, "/pn4", b"new").await;
    node.close().await.expect("close");
    assert_eq!(c.exists("/pn4").await, Ok(None));
}

#[tokio::test]
async fn set_data_before_start_or_after_close_is_refused() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    let node = PersistentNode::builder(c.clone(), "/pn5", b"a".to_vec())
        .build()
        .expect("build");
    assert_eq!(
        within("set_data before start", node.set_data(b"b".to_vec())).await,
        Err(Error::Closed)
    );
    node.start().expect("start");
    within("set_data while running", node.set_data(b"c".to_vec()))
        .await
        .expect("written");
    node.close().await.expect("close");
    assert_eq!(
        within("set_data after close", node.set_data(b"d".to_vec())).await,
        Err(Error::Closed)
    );
}

/// A create applied by the server whose reply is lost leaves the keeper not knowing its node
/// exists; closing then still deletes it (once the connection is back), in persistent and
/// ephemeral modes alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_after_a_lost_create_reply_deletes_the_node() {
    for (path, mode) in [
        ("/lost-persistent", CreateMode::Persistent),
        ("/lost-ephemeral", CreateMode::Ephemeral),
    ] {
        let (server, proxy) = server_behind_a_proxy().await;
        let observer = client(&server.connect_string()).await;
        let c = client(&proxy.connect_string()).await;
        proxy.set_mode(Mode::DropReplies);
        let node = PersistentNode::builder(c.clone(), path, b"x".to_vec())
            .mode(mode)
            .build()
            .unwrap();
        node.start().unwrap();
        within("the create applied", async {
            while observer.exists(path).await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        node.close().await.unwrap();
        proxy.set_mode(Mode::Forward);
        proxy.cut();
        within("the node deleted", async {
            while observer.exists(path).await.unwrap().is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        c.close().await.unwrap();
    }
}

/// A persistent node where an ephemeral one is to be kept never goes with a session: that is
/// reported (NODEEXISTS) instead of waited for silently, and once it is deleted the node is
/// created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_node_in_the_way_of_an_ephemeral_one_is_reported() {
    let server = server().await;
    let operator = client(&server.connect_string()).await;
    let owner = client(&server.connect_string()).await;
    operator.create("/pn6").await.expect("parent");
    operator
        .create("/pn6/x")
        .data("left over")
        .await
        .expect("in the way");
    let node = PersistentNode::builder(owner.clone(), "/pn6/x", b"mine".to_vec())
        .build()
        .expect("build");
    node.start().expect("start");
    assert_eq!(
        node.wait_for_initial_create(PATIENCE).await,
        Err(Error::Zk(ZkError::NodeExists))
    );
    operator.delete("/pn6/x").await.expect("delete");
    assert!(node
        .wait_for_initial_create(PATIENCE)
        .await
        .expect("created"));
    let stat = wait_data(&owner, "/pn6/x", b"mine").await;
    assert_eq!(stat.ephemeral_owner, owner.session_id());
    node.close().await.unwrap();
}
