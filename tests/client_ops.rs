//! Client operations against a real server (Apache ZooKeeper with ZK_TEST_CONNECT, else the
//! embedded TestingServer).

mod support;

use std::borrow::Cow;
use std::time::Duration;

use zk::client::{
    protected, Acl, Client, CreateMode, Error, Id, OpResult, Perms, ReadResult, RetryNTimes,
};

macro_rules! env_or_skip {
    () => {
        match support::env().await {
            Some(env) => env,
            None => return,
        }
    };
}

#[tokio::test]
async fn create_get_set_delete_with_versions() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    let created = client.create(&root).data(b"v0").await.unwrap();
    assert_eq!(created.path, root);
    let stat = created.stat.expect("create2 returns a stat");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.data_length, 2);

    let (data, stat) = client.get_data(&root).await.unwrap();
    assert_eq!(data, b"v0");
    let stat = client
        .set_data(&root, b"v1")
        .version(stat.version)
        .await
        .unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(
        client.set_data(&root, b"v2").version(0).await,
        Err(Error::BadVersion)
    );
    assert_eq!(client.create(&root).await, Err(Error::NodeExists));
    assert_eq!(
        client.delete(&root).version(0).await,
        Err(Error::BadVersion)
    );
    client.delete(&root).version(1).await.unwrap();
    assert_eq!(client.get_data(&root).await, Err(Error::NoNode));
    assert_eq!(client.exists(&root).await, Ok(None));
    assert_eq!(client.delete(&root).await, Err(Error::NoNode));
    client.delete(&root).quietly().await.unwrap();
    client.close().await.unwrap();
}

/// As Curator's `ZKPaths.deleteChildren`: children created while a tree is being deleted are
/// deleted in their turn, and a tree another client deletes at the same time counts as
/// deleted, not as NONODE or NOTEMPTY.
#[tokio::test]
async fn deleting_children_outlasts_concurrent_creates_and_deletes() {
    let env = env_or_skip!();
    let a = support::connected_client(env.connect_string()).await;
    let b = support::connected_client(env.connect_string()).await;
    let c = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    for round in 0..5 {
        let tree = format!("{root}-{round}");
        a.create(&format!("{tree}/x/y"))
            .creating_parents_if_needed()
            .await
            .unwrap();
        let kids = (0..20).map(|i| a.create(&format!("{tree}/k{i}")).into_future());
        for created in futures::future::join_all(kids).await {
            created.unwrap();
        }
        // A bounded adder: one adding without end as fast as the deleter deletes would keep
        // it busy for good (in Curator too).
        let adder = {
            let (b, tree) = (b.clone(), tree.clone());
            tokio::spawn(async move {
                for _ in 0..200 {
                    match b
                        .create(&format!("{tree}/n-"))
                        .mode(CreateMode::PersistentSequential)
                        .await
                    {
                        Ok(_) => {}
                        Err(Error::NoNode) => return,
                        Err(e) => panic!("adding a child: {e}"),
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (first, second) = tokio::join!(
            a.delete(&tree).deleting_children_if_needed().into_future(),
            c.delete(&tree).deleting_children_if_needed().into_future(),
        );
        assert_eq!((first, second), (Ok(()), Ok(())), "round {round}");
        assert_eq!(a.exists(&tree).await, Ok(None));
        tokio::time::timeout(Duration::from_secs(10), adder)
            .await
            .expect("the adder stops")
            .unwrap();
    }
    for client in [a, b, c] {
        client.close().await.unwrap();
    }
}

/// A guaranteed delete keeps its place in the caller's order like any call: polled before a
/// create of the same path, it reaches the server first.
#[tokio::test]
async fn a_guaranteed_delete_is_sent_in_first_poll_order() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let (deleted, created) = tokio::join!(
        client.delete(&root).guaranteed().into_future(),
        client.create(&root).data(b"again").into_future(),
    );
    assert_eq!(deleted, Ok(()));
    assert_eq!(created.map(|c| c.path), Ok(root.clone()));
    assert_eq!(client.get_data(&root).await.unwrap().0, b"again");
    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

/// Making parents that already exist writes nothing: each level is read before it is created,
/// as in Curator's `ZKPaths.mkdirs`. A create refused NODEEXISTS is still a txn, taking a zxid
/// (and an fsync).
#[tokio::test]
async fn making_parents_that_exist_writes_nothing() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client
        .create(&format!("{root}/a/b"))
        .creating_parents_if_needed()
        .await
        .unwrap();
    let czxid = |created: zk::client::Created| created.stat.expect("create2's stat").czxid;
    let before = czxid(client.create(&format!("{root}/x")).await.unwrap());
    client
        .create_containers(&format!("{root}/a/b"))
        .await
        .unwrap();
    let exists = client
        .exists(&format!("{root}/a/b/c"))
        .creating_parent_containers_if_needed()
        .await
        .unwrap();
    assert_eq!(exists, None);
    let after = czxid(client.create(&format!("{root}/y")).await.unwrap());
    if !env.is_external() {
        // The server is this test's own: nothing else writes in between.
        assert_eq!(after, before + 1, "no txn between the two creates");
    }
    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn parents_containers_sequential_and_ephemeral_nodes() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();

    assert_eq!(
        client.create(&format!("{root}/a/b")).await,
        Err(Error::NoNode)
    );
    client
        .create(&format!("{root}/a/b"))
        .creating_parents_if_needed()
        .await
        .unwrap();
    client
        .create(&format!("{root}/c/d"))
        .creating_parent_containers_if_needed()
        .await
        .unwrap();
    assert!(client.exists(&format!("{root}/c")).await.unwrap().is_some());

    // create_containers: missing nodes become containers, existing ones stay as they are.
    let (k, l) = (format!("{root}/a/k"), format!("{root}/a/k/l"));
    client.create_containers(&l).await.unwrap();
    client.create_containers(&l).await.unwrap();
    assert!(client.exists(&l).await.unwrap().is_some());
    if env.is_external() {
        // Apache looks for empty containers once a minute: too slow to wait for here.
        client.delete(&l).await.unwrap();
        client.delete(&k).await.unwrap();
    } else {
        // Once l had a child and is empty again, the server reaps l, then k; a (persistent)
        // stays. So does c, made a container by creating_parent_containers_if_needed, once
        // its child d goes.
        client.create(&format!("{l}/m")).await.unwrap();
        client.delete(&format!("{l}/m")).await.unwrap();
        client.delete(&format!("{root}/c/d")).await.unwrap();
        tokio::time::timeout(support::PATIENCE, async {
            while client.exists(&k).await.unwrap().is_some()
                || client.exists(&format!("{root}/c")).await.unwrap().is_some()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the empty containers are reaped");
        assert!(client.exists(&format!("{root}/a")).await.unwrap().is_some());
    }

    let mut names = Vec::new();
    for _ in 0..3 {
        let c = client
            .create(&format!("{root}/seq/n-"))
            .mode(CreateMode::EphemeralSequential)
            .creating_parents_if_needed()
            .await
            .unwrap();
        let stat = c.stat.unwrap();
        assert_eq!(stat.ephemeral_owner, client.session_id());
        names.push(c.path);
    }
    let seqs: Vec<i64> = names
        .iter()
        .map(|n| protected::sequence_number(n).unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(names
        .iter()
        .all(|n| n.len() == format!("{root}/seq/n-").len() + 10));

    if let Some(mut ephemerals) = env.since((3, 6), client.get_ephemerals(&root)).await {
        ephemerals.sort();
        assert_eq!(ephemerals, names);
    }
    // a, a/b, (c, c/d: reaped above on the embedded server), seq, 3 × seq/n-
    let count = client.get_all_children_number(&root);
    if let Some(count) = env.since((3, 6), count).await {
        assert_eq!(count, if env.is_external() { 8 } else { 6 });
    }
    let mut kids = client.get_children(&format!("{root}/seq")).await.unwrap();
    kids.sort();
    assert_eq!(kids.len(), 3);
    let (kids2, stat) = client
        .get_children(&format!("{root}/seq"))
        .with_stat()
        .await
        .unwrap();
    assert_eq!(kids2.len(), 3);
    assert_eq!(stat.num_children, 3);

    assert_eq!(
        client.create(&format!("{}/child", names[0])).await.err(),
        Some(Error::NoChildrenForEphemerals)
    );
    let eph = client
        .create(&format!("{root}/e"))
        .mode(CreateMode::Ephemeral)
        .await
        .unwrap();
    assert_eq!(
        client.create(&format!("{}/child", eph.path)).await,
        Err(Error::NoChildrenForEphemerals)
    );

    assert_eq!(client.delete(&root).await, Err(Error::NotEmpty));
    support::remove_tree(&client, &root).await;
    assert_eq!(client.exists(&root).await, Ok(None));
    client.close().await.unwrap();
}

#[tokio::test]
async fn close_deletes_ephemerals_at_once() {
    let env = env_or_skip!();
    let observer = support::connected_client(env.connect_string()).await;
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    observer.create(&root).await.unwrap();
    let node = format!("{root}/eph");
    client
        .create(&node)
        .mode(CreateMode::Ephemeral)
        .await
        .unwrap();
    let (stat, gone) = observer.exists(&node).watched().await.unwrap();
    assert!(stat.is_some());
    client.close().await.unwrap();
    // close() returns after the server's reply to closeSession, which comes once the session
    // and its ephemerals are gone: not after a session timeout.
    observer.sync(&root).await.unwrap();
    assert_eq!(
        observer.exists(&node).await,
        Ok(None),
        "gone when close returns"
    );
    assert_eq!(
        futures::FutureExt::now_or_never(gone).map(|e| e.event_type),
        Some(zk::client::EventType::NodeDeleted),
        "the watch fired before the sync reply"
    );
    assert_eq!(client.get_data(&root).await, Err(Error::Closed));
    support::remove_tree(&observer, &root).await;
    observer.close().await.unwrap();
}

#[tokio::test]
async fn arguments_are_rejected_before_anything_is_sent() {
    // A client whose server does not exist: argument errors must come back at once, not
    // after the connection timeout.
    let client = Client::builder()
        .connect_string("127.0.0.1:1")
        .connection_timeout(Duration::from_secs(30))
        .retry_policy(RetryNTimes::new(0, Duration::ZERO))
        .build()
        .unwrap();
    let quick = Duration::from_secs(2);
    let check = |r: Result<Result<zk::client::Created, Error>, tokio::time::error::Elapsed>| {
        r.expect("argument errors are immediate")
    };
    assert!(matches!(
        check(tokio::time::timeout(quick, client.create("no-slash").into_future()).await),
        Err(Error::InvalidPath(_))
    ));
    assert!(matches!(
        check(tokio::time::timeout(quick, client.create("/a//b").into_future()).await),
        Err(Error::InvalidPath(_))
    ));
    assert!(matches!(
        check(tokio::time::timeout(quick, client.create("/a/").into_future()).await),
        Err(Error::InvalidPath(_))
    ));
    assert!(matches!(
        check(
            tokio::time::timeout(
                quick,
                client
                    .create("/big")
                    .data(vec![0u8; 1024 * 1024 + 1])
                    .into_future()
            )
            .await
        ),
        Err(Error::DataTooLarge { .. })
    ));
    assert_eq!(
        check(
            tokio::time::timeout(
                quick,
                client
                    .create("/ttl")
                    .mode(CreateMode::Ephemeral)
                    .ttl(5)
                    .into_future()
            )
            .await
        ),
        Err(Error::TtlWithoutTtlMode)
    );
    assert_eq!(
        check(
            tokio::time::timeout(
                quick,
                client
                    .create("/ttl")
                    .mode(CreateMode::PersistentWithTtl)
                    .into_future()
            )
            .await
        ),
        Err(Error::TtlWithoutTtlMode)
    );
    assert!(matches!(
        tokio::time::timeout(quick, client.set_data("bad", b"x".to_vec()).into_future())
            .await
            .unwrap(),
        Err(Error::InvalidPath(_))
    ));
    assert!(matches!(
        tokio::time::timeout(
            quick,
            client
                .transaction()
                .check("/ok", 1)
                .delete("bad", -1)
                .into_future()
        )
        .await
        .unwrap(),
        Err(Error::InvalidPath(_))
    ));
    assert!(matches!(
        "".parse::<zk::client::ConnectString>(),
        Err(Error::InvalidConnectString(_))
    ));
}

use std::future::IntoFuture;

/// An ACL provider that hands out an empty ACL and records the paths it was asked about.
#[derive(Debug, Default, Clone)]
struct EmptyAclRecorder(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl zk::client::AclProvider for EmptyAclRecorder {
    fn acl_for_path(&self, path: &str) -> Cow<'_, [Acl]> {
        self.0.lock().unwrap().push(path.to_owned());
        Cow::Borrowed(&[])
    }
}

#[tokio::test]
async fn the_acl_provider_is_asked_only_about_valid_paths_and_its_acl_is_checked_at_once() {
    // No server, and a namespace whose root would be created ahead of the first call: an
    // invalid ACL from the provider must still fail the call at once.
    let provider = EmptyAclRecorder::default();
    let client = Client::builder()
        .connect_string("127.0.0.1:1")
        .namespace("app")
        .acl_provider(provider.clone())
        .connection_timeout(Duration::from_secs(30))
        .retry_policy(RetryNTimes::new(0, Duration::ZERO))
        .build()
        .unwrap();
    let quick = Duration::from_secs(2);
    let bad_path = tokio::time::timeout(quick, client.create("relative").into_future())
        .await
        .expect("argument errors are immediate");
    assert!(
        matches!(bad_path, Err(Error::InvalidPath(_))),
        "{bad_path:?}"
    );
    assert!(
        provider.0.lock().unwrap().is_empty(),
        "asked about an invalid path"
    );
    let empty_acl = tokio::time::timeout(quick, client.create("/node").into_future())
        .await
        .expect("an invalid ACL is an argument error: immediate");
    assert!(matches!(empty_acl, Err(Error::InvalidAcl)), "{empty_acl:?}");
    assert_eq!(*provider.0.lock().unwrap(), ["/app/node"]);
}

#[tokio::test]
async fn transactions_are_all_or_nothing_with_per_op_results() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let a = format!("{root}/a");
    let b = format!("{root}/b");
    let results = client
        .transaction()
        .create(&a, b"1")
        .create_with(&b, b"2", CreateMode::PersistentSequential, None)
        .set_data(&a, b"3", 0)
        .check(&a, 1)
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], OpResult::Create { path, .. } if *path == a));
    let OpResult::Create { path: b_path, .. } = &results[1] else {
        panic!("{results:?}")
    };
    assert!(b_path.starts_with(&b) && b_path.len() == b.len() + 10);
    assert!(matches!(&results[2], OpResult::SetData { stat } if stat.version == 1));
    assert_eq!(results[3], OpResult::Check);

    // A failing op aborts the whole transaction.
    let c = format!("{root}/c");
    let err = client
        .transaction()
        .create(&c, b"")
        .delete(&a, 99)
        .set_data(&a, b"never", -1)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Transaction {
            index: 1,
            error: Box::new(Error::BadVersion)
        }
    );
    assert_eq!(client.exists(&c).await, Ok(None));
    assert_eq!(client.get_data(&a).await.unwrap().0, b"3");

    let reads = client
        .multi_read()
        .get_data(&a)
        .get_children(&root)
        .get_data(&c);
    if let Some(reads) = env.since((3, 6), reads).await {
        assert!(matches!(&reads[0], ReadResult::Data { data, .. } if data == b"3"));
        assert!(matches!(&reads[1], ReadResult::Children(k) if k.len() == 2));
        assert_eq!(reads[2], ReadResult::Error(Error::NoNode));
    }

    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn namespaces_are_created_lazily_and_hidden() {
    let env = env_or_skip!();
    let root = support::unique_root();
    let ns = root.trim_start_matches('/').to_owned();
    let client = support::client_builder(env.connect_string())
        .namespace(format!("{ns}/app"))
        .build()
        .unwrap();
    client
        .block_until_connected(support::PATIENCE)
        .await
        .unwrap();
    let created = client
        .create("/x/y")
        .creating_parents_if_needed()
        .data(b"in-ns")
        .await
        .unwrap();
    assert_eq!(created.path, "/x/y");
    let plain = client.using_namespace("").unwrap();
    assert_eq!(
        plain.get_data(&format!("{root}/app/x/y")).await.unwrap().0,
        b"in-ns"
    );
    let (kids, _) = client.get_children("/").with_stat().await.unwrap();
    assert_eq!(kids, vec!["x".to_owned()]);
    let other = client.using_namespace(&format!("{ns}/other")).unwrap();
    assert_eq!(other.namespace(), Some(format!("{root}/other").as_str()));
    other.create("/z").await.unwrap();
    let (_, stat) = plain.get_data(&format!("{root}/other")).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0);
    if !env.is_external() {
        // The namespace root is a container: empty again, the server reaps it (Apache looks
        // once a minute: too slow to wait for here) — and the next call creates it again.
        let reaped = || {
            tokio::time::timeout(support::PATIENCE, async {
                while plain
                    .exists(&format!("{root}/other"))
                    .await
                    .unwrap()
                    .is_some()
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        other.delete("/z").await.unwrap();
        reaped().await.expect("the empty namespace root is reaped");
        // A read's NONODE stands without re-creating the root (a write each time, for
        // nothing: the node is missing either way)...
        assert_eq!(other.get_data("/z").await, Err(Error::NoNode));
        assert_eq!(other.delete("/z").await, Err(Error::NoNode));
        assert_eq!(plain.exists(&format!("{root}/other")).await, Ok(None));
        // ...a create's makes it again, in a transaction too.
        let results = other.transaction().create("/t", b"").await.unwrap();
        assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/t"));
        other.delete("/t").await.unwrap();
        reaped()
            .await
            .expect("the empty namespace root is reaped again");
        other.create("/z").await.unwrap();
        assert!(plain
            .exists(&format!("{root}/other/z"))
            .await
            .unwrap()
            .is_some());
    }
    let seq = client
        .create("/s-")
        .mode(CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert!(seq.path.starts_with("/s-"), "{}", seq.path);
    support::remove_tree(&plain, &root).await;
    client.close().await.unwrap();
}

/// `delete("/")` under a namespace deletes its root, as Curator's; the next call makes it
/// again. Without a namespace it is an argument error.
#[tokio::test]
async fn deleting_slash_under_a_namespace_deletes_its_root() {
    let env = env_or_skip!();
    let root = support::unique_root();
    let client = support::connected_client(env.connect_string()).await;
    let app = client
        .using_namespace(&format!("{}/app", root.trim_start_matches('/')))
        .unwrap();
    app.create("/a/b")
        .creating_parents_if_needed()
        .await
        .unwrap();
    app.delete("/").deleting_children_if_needed().await.unwrap();
    let app_root = format!("{root}/app");
    assert_eq!(client.exists(&app_root).await, Ok(None));
    app.create("/c").await.expect("the root is made again");
    assert!(client
        .exists(&format!("{app_root}/c"))
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        client.delete("/").await,
        Err(Error::InvalidArgument(_))
    ));
    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

/// A create's NONODE under a namespace whose root exists is answered as it is: the root is
/// read, not created again (a failed create is a write) and the call is not sent twice.
#[tokio::test]
async fn a_failed_create_under_an_existing_namespace_is_sent_once() {
    let env = env_or_skip!();
    let root = support::unique_root();
    let client = support::connected_client(env.connect_string()).await;
    let app = client
        .using_namespace(&format!("{}/app", root.trim_start_matches('/')))
        .unwrap();
    let czxid = |created: zk::client::Created| created.stat.expect("create2's stat").czxid;
    let before = czxid(app.create("/a").await.unwrap());
    assert_eq!(app.create("/missing/child").await, Err(Error::NoNode));
    let failed = app
        .transaction()
        .check("/missing", -1)
        .create("/b", b"")
        .await
        .unwrap_err();
    assert!(
        matches!(failed, Error::Transaction { index: 0, ref error } if **error == Error::NoNode),
        "{failed:?}"
    );
    let after = czxid(app.create("/c").await.unwrap());
    if !env.is_external() {
        // The server is this test's own: each failed call is one error txn, nothing more.
        assert_eq!(after, before + 3, "one txn per failed call");
    }
    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

/// Idempotent operations succeed when the node is already as they would leave it, on any
/// attempt (Curator's `testIdempotentCreate`, and its setData and delete rules).
#[tokio::test]
async fn idempotent_operations_succeed_when_their_end_state_holds() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let n = format!("{root}/n");

    let created = client.create(&n).data(b"1").idempotent().await.unwrap();
    assert_eq!(created.path, n);
    let again = client.create(&n).data(b"1").idempotent().await.unwrap();
    assert_eq!(again.stat.unwrap().version, 0, "the same create again");
    assert_eq!(
        client.create(&n).data(b"2").idempotent().await,
        Err(Error::NodeExists),
        "other data"
    );
    client.set_data(&n, b"2").await.unwrap();
    for data in [b"1", b"2"] {
        assert_eq!(
            client.create(&n).data(data).idempotent().await,
            Err(Error::NodeExists),
            "written since: version 1"
        );
    }

    // Version 1 holds "2": a write of "2" from version 0 is already done; of "3" it is not.
    let stat = client
        .set_data(&n, b"2")
        .version(0)
        .idempotent()
        .await
        .unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(
        client.set_data(&n, b"3").version(0).idempotent().await,
        Err(Error::BadVersion)
    );
    assert_eq!(
        client.set_data(&n, b"2").version(0).await,
        Err(Error::BadVersion),
        "not idempotent"
    );

    client.delete(&n).idempotent().await.unwrap();
    client.delete(&n).idempotent().await.unwrap();
    assert_eq!(client.delete(&n).await, Err(Error::NoNode));

    // An equal ephemeral is this create's only if this session owns it: another session's
    // goes with that session.
    let e = format!("{root}/e");
    let create_e = |client: &Client| {
        client
            .create(&e)
            .data(b"1")
            .mode(CreateMode::Ephemeral)
            .idempotent()
            .into_future()
    };
    let other = support::connected_client(env.connect_string()).await;
    create_e(&other).await.unwrap();
    assert_eq!(create_e(&client).await.map(|_| ()), Err(Error::NodeExists));
    assert!(create_e(&other).await.is_ok(), "its owner's retry");
    other.close().await.unwrap();

    client.delete(&root).await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn or_set_data_idempotent_protected_and_ttl_creates() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let n = format!("{root}/n");
    client.create(&n).data(b"a").await.unwrap();
    let again = client.create(&n).data(b"b").or_set_data().await.unwrap();
    assert_eq!(again.stat.unwrap().version, 1);
    assert_eq!(client.get_data(&n).await.unwrap().0, b"b");

    let p = client
        .create(&format!("{root}/locks/lock-"))
        .mode(CreateMode::EphemeralSequential)
        .with_protection()
        .creating_parent_containers_if_needed()
        .await
        .unwrap();
    let name = p.path.rsplit('/').next().unwrap();
    assert!(protected::is_protected(name), "{name}");
    assert!(protected::strip_protected_prefix(name).starts_with("lock-"));
    assert!(protected::sequence_number(name).is_some());

    // Apache looks for expired TTL nodes once a minute: only the embedded server's reaping is
    // waited for.
    let ttl_ms = if env.is_external() { 60_000 } else { 500 };
    let ttl = client
        .create(&format!("{root}/ttl"))
        .ttl(ttl_ms)
        .await
        .unwrap();
    assert_eq!(ttl.stat.unwrap().ephemeral_owner, 0);
    if !env.is_external() {
        tokio::time::timeout(support::PATIENCE, async {
            while client.exists(&ttl.path).await.unwrap().is_some() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the TTL node is reaped once its TTL has passed");
    }
    // A negative TTL is none, as Curator's default -1: a plain persistent node.
    let untimed = client
        .create(&format!("{root}/untimed"))
        .ttl(-1)
        .await
        .unwrap();
    assert!(untimed.stat.is_some());

    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

/// Host names are resolved when connecting, and a name that does not resolve is passed over
/// for the next host.
#[tokio::test]
async fn host_names_are_resolved_and_unresolvable_ones_passed_over() {
    let env = env_or_skip!();
    let by_name = env.connect_string().replace("127.0.0.1", "localhost");
    if by_name == env.connect_string() {
        eprintln!("skipped: the server is not addressed as 127.0.0.1");
        return;
    }
    for connect in [
        by_name.clone(),
        format!("no-such-host.invalid:2181,{by_name}"),
    ] {
        let client = support::connected_client(&connect).await;
        assert!(client.exists("/").await.unwrap().is_some(), "{connect}");
        client.close().await.unwrap();
    }
}

/// Gives the nodes under `private` (full paths) alice's ACL, every other node the open one.
#[derive(Debug)]
struct PrivateSubtree {
    private: String,
}

impl zk::client::AclProvider for PrivateSubtree {
    fn acl_for_path(&self, path: &str) -> Cow<'_, [Acl]> {
        if path == self.private || path.starts_with(&format!("{}/", self.private)) {
            vec![Acl::new(Perms::ALL, Id::digest("alice", "secret"))].into()
        } else {
            Acl::open_unsafe().into()
        }
    }
}

/// The ACL provider names the ACL of every node created without one — parents created on the
/// way included, by their own path, namespace included (Curator's `ACLProvider`).
#[tokio::test]
async fn the_acl_provider_gives_each_created_node_its_acl() {
    let env = env_or_skip!();
    let root = support::unique_root();
    let namespace = root.trim_start_matches('/');
    let client = support::client_builder(env.connect_string())
        .digest_auth("alice", "secret")
        .namespace(namespace)
        .acl_provider(PrivateSubtree {
            private: format!("{root}/private"),
        })
        .build()
        .unwrap();
    client
        .block_until_connected(support::PATIENCE)
        .await
        .unwrap();
    let alices = vec![Acl::new(Perms::ALL, Id::digest("alice", "secret"))];

    client.create("/public").await.unwrap();
    client
        .create("/private/a/b")
        .creating_parents_if_needed()
        .await
        .unwrap();
    client
        .create("/private/given")
        .acl(Acl::open_unsafe())
        .await
        .unwrap();
    for (path, acl) in [
        ("/public", Acl::open_unsafe()),
        ("/private", alices.clone()),
        ("/private/a", alices.clone()),
        ("/private/a/b", alices.clone()),
        ("/private/given", Acl::open_unsafe()),
    ] {
        assert_eq!(client.get_acl(path).await.unwrap().0, acl, "{path}");
    }
    let anonymous = support::connected_client(env.connect_string()).await;
    assert_eq!(
        anonymous.get_data(&format!("{root}/private/a")).await,
        Err(Error::NoAuth)
    );
    support::remove_tree(&client.using_namespace("").unwrap(), &root).await;
    anonymous.close().await.unwrap();
    client.close().await.unwrap();
}

/// A connected client authenticated as digest user `alice` (password `secret`).
async fn alice(connect: &str) -> zk::client::Client {
    let alice = support::client_builder(connect)
        .digest_auth("alice", "secret")
        .build()
        .unwrap();
    alice
        .block_until_connected(support::PATIENCE)
        .await
        .unwrap();
    alice
}

#[tokio::test]
async fn acls_digest_auth_and_who_am_i() {
    let env = env_or_skip!();
    let root = support::unique_root();
    let alice = alice(env.connect_string()).await;
    let anonymous = support::connected_client(env.connect_string()).await;

    if let Some(me) = env.since((3, 7), alice.who_am_i()).await {
        assert!(
            me.iter()
                .any(|c| c.auth_scheme == "digest" && c.user == "alice"),
            "{me:?}"
        );
    }
    alice
        .create(&root)
        .acl(vec![
            Acl::new(Perms::ALL, Id::digest("alice", "secret")),
            Acl::new(Perms::READ, Id::anyone()),
        ])
        .data(b"private")
        .await
        .unwrap();
    assert_eq!(anonymous.get_data(&root).await.unwrap().0, b"private");
    assert_eq!(
        anonymous.set_data(&root, b"x".to_vec()).await,
        Err(Error::NoAuth)
    );
    let (acl, stat) = alice.get_acl(&root).await.unwrap();
    assert_eq!(acl.len(), 2);
    assert_eq!(stat.aversion, 0);
    alice
        .set_acl(&root, Acl::open_unsafe())
        .version(0)
        .await
        .unwrap();
    anonymous.set_data(&root, b"x".to_vec()).await.unwrap();
    assert_eq!(
        alice.set_acl(&root, Acl::open_unsafe()).version(0).await,
        Err(Error::BadVersion)
    );
    alice.sync(&root).await.unwrap();
    alice.delete(&root).await.unwrap();
    alice.close().await.unwrap();
    anonymous.close().await.unwrap();
}

#[tokio::test]
async fn acl_with_parents_gives_created_parents_the_nodes_acl() {
    let env = env_or_skip!();
    let root = support::unique_root();
    let alice = alice(env.connect_string()).await;
    let anonymous = support::connected_client(env.connect_string()).await;
    let guarded = vec![
        Acl::new(Perms::ALL, Id::digest("alice", "secret")),
        Acl::new(Perms::READ, Id::anyone()),
    ];
    alice.create(&root).await.unwrap();

    let (with, plain) = (format!("{root}/with"), format!("{root}/plain"));
    alice
        .create(&format!("{with}/a/leaf"))
        .acl_with_parents(guarded.clone())
        .creating_parents_if_needed()
        .await
        .unwrap();
    alice
        .create(&format!("{plain}/a/leaf"))
        .acl(guarded.clone())
        .creating_parents_if_needed()
        .await
        .unwrap();
    for node in [&with, &format!("{with}/a"), &format!("{with}/a/leaf")] {
        let (acl, _) = alice.get_acl(node).await.unwrap();
        assert_eq!(acl.len(), 2, "{node}: {acl:?}");
        assert_eq!(
            anonymous.create(&format!("{node}/x")).await,
            Err(Error::NoAuth),
            "{node}"
        );
    }
    // Without it, only the node gets the ACL; its parents get the default (open).
    assert_eq!(alice.get_acl(&plain).await.unwrap().0, Acl::open_unsafe());
    anonymous.create(&format!("{plain}/x")).await.unwrap();
    assert_eq!(
        alice
            .get_acl(&format!("{plain}/a/leaf"))
            .await
            .unwrap()
            .0
            .len(),
        2
    );

    support::remove_tree(&alice, &root).await;
    alice.close().await.unwrap();
    anonymous.close().await.unwrap();
}

#[tokio::test]
async fn requests_are_pipelined_in_await_order() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let prefix = format!("{root}/q-");
    let futures: Vec<_> = (0..200)
        .map(|i| {
            client
                .create(&prefix)
                .mode(CreateMode::PersistentSequential)
                .data(format!("{i}").into_bytes())
                .into_future()
        })
        .collect();
    let results = futures::future::join_all(futures).await;
    for (i, r) in results.into_iter().enumerate() {
        let created = r.unwrap();
        // First polled first: the i-th future got the i-th sequence number.
        assert_eq!(
            protected::sequence_number(&created.path),
            Some(i as i64),
            "{}",
            created.path
        );
    }
    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn namespaces_and_parents_below_a_create_restricted_node_work() {
    let env = env_or_skip!();
    let admin = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    let ns = format!("{root}/app");
    admin
        .create(&ns)
        .creating_parents_if_needed()
        .await
        .unwrap();
    // Everybody may read, write, delete and administer the root, but not create below it.
    let no_create = Perms::from_bits(Perms::ALL.bits() & !Perms::CREATE.bits());
    admin
        .set_acl(&root, vec![Acl::new(no_create, Id::anyone())])
        .await
        .unwrap();

    let client = support::connected_client(env.connect_string()).await;
    let app = client.using_namespace(&ns).unwrap();
    app.create("/x").await.expect("namespace root exists");
    client
        .create(&format!("{ns}/a/b"))
        .creating_parents_if_needed()
        .await
        .expect("parents below an existing restricted node");
    assert!(admin.exists(&format!("{ns}/x")).await.unwrap().is_some());

    admin.set_acl(&root, Acl::open_unsafe()).await.unwrap();
    support::remove_tree(&admin, &root).await;
    client.close().await.unwrap();
    admin.close().await.unwrap();
}

/// Since ZOOKEEPER-2590 `exists` needs READ on a node that exists: making parents reads
/// upwards from the deepest level, as Curator's `ZKPaths.mkdirs`, so an unreadable ancestor
/// above an existing level does not matter.
#[tokio::test]
async fn making_parents_below_an_unreadable_ancestor_works() {
    let env = env_or_skip!();
    let admin = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    let mine = format!("{root}/secret/mine");
    admin
        .create(&mine)
        .creating_parents_if_needed()
        .await
        .unwrap();
    let no_read = Perms::from_bits(Perms::ALL.bits() & !Perms::READ.bits());
    admin
        .set_acl(
            &format!("{root}/secret"),
            vec![Acl::new(no_read, Id::anyone())],
        )
        .await
        .unwrap();

    let client = support::connected_client(env.connect_string()).await;
    client
        .create(&format!("{mine}/a/b"))
        .creating_parents_if_needed()
        .await
        .expect("parents below a readable existing level");
    client
        .create_containers(&format!("{mine}/c/d"))
        .await
        .expect("containers below a readable existing level");
    assert!(admin
        .exists(&format!("{mine}/a/b"))
        .await
        .unwrap()
        .is_some());
    assert!(admin
        .exists(&format!("{mine}/c/d"))
        .await
        .unwrap()
        .is_some());

    admin
        .set_acl(&format!("{root}/secret"), Acl::open_unsafe())
        .await
        .unwrap();
    support::remove_tree(&admin, &root).await;
    client.close().await.unwrap();
    admin.close().await.unwrap();
}

#[tokio::test]
async fn a_chroot_makes_every_path_relative_to_it() {
    let env = env_or_skip!();
    let root = support::unique_root();
    let plain = support::connected_client(env.connect_string()).await;
    plain.create(&root).await.unwrap();
    let client = support::connected_client(&format!("{}{root}", env.connect_string())).await;
    let within = |what| {
        move |fut| async move {
            tokio::time::timeout(support::PATIENCE, fut)
                .await
                .unwrap_or_else(|_| panic!("{what}"))
        }
    };

    let created = client.create("/a").data(b"x").await.unwrap();
    assert_eq!(created.path, "/a");
    let seq = client
        .create("/s-")
        .mode(CreateMode::EphemeralSequential)
        .await
        .unwrap();
    assert!(seq.path.starts_with("/s-"), "{}", seq.path);
    let mut kids = client.get_children("/").await.unwrap();
    kids.sort();
    assert_eq!(kids, ["a", &seq.path[1..]]);
    assert_eq!(plain.get_data(&format!("{root}/a")).await.unwrap().0, b"x");
    if let Some(ephemerals) = env.since((3, 6), client.get_ephemerals("/")).await {
        assert_eq!(ephemerals, [seq.path.as_str()]);
    }
    let results = client.transaction().create("/t", b"").await.unwrap();
    assert!(matches!(&results[0], OpResult::Create { path, .. } if path == "/t"));

    // Watch events carry chrooted paths, the chroot itself being "/".
    let (_, _, data_watch) = client.get_data("/a").watched().await.unwrap();
    let (_, child_watch) = client.get_children("/").watched().await.unwrap();
    plain.set_data(&format!("{root}/a"), b"y").await.unwrap();
    plain.create(&format!("{root}/b")).await.unwrap();
    assert_eq!(within("data watch")(data_watch).await.path, "/a");
    assert_eq!(within("child watch")(child_watch).await.path, "/");

    // getConfig reads /zookeeper/config itself, not under the chroot, and its watch is
    // registered at that path.
    let (config, stat) = client.get_config().await.unwrap();
    let (raw, raw_stat) = plain.get_data("/zookeeper/config").await.unwrap();
    assert_eq!((&config, &stat), (&raw, &raw_stat));
    let (_, watched_stat, _config_watch) = client.get_config().watched().await.unwrap();
    assert_eq!(watched_stat, raw_stat);
    // A reconfig is refused by servers without reconfigEnabled (both, by default).
    let err = client
        .reconfig()
        .joining(["server.9=127.0.0.1:2888:3888;2181"])
        .await
        .unwrap_err();
    assert_eq!(err, Error::ReconfigDisabled);

    client.close().await.unwrap();
    support::remove_tree(&plain, &root).await;
    plain.close().await.unwrap();
}

#[tokio::test]
async fn compressed_writes_and_decompressed_reads() {
    let env = env_or_skip!();
    let client = support::connected_client(env.connect_string()).await;
    let root = support::unique_root();
    client.create(&root).await.unwrap();
    let text = b"a line of a config file that repeats\n".repeat(1_000);
    let is_gzip = |stored: &[u8]| stored.starts_with(&[0x1f, 0x8b]) && stored.len() < 2_000;

    // Per call: compressed() stores gzip, decompressed() reads it back.
    let a = format!("{root}/a");
    client
        .create(&a)
        .data(text.clone())
        .compressed()
        .await
        .unwrap();
    assert!(is_gzip(&client.get_data(&a).await.unwrap().0));
    assert_eq!(client.get_data(&a).decompressed().await.unwrap().0, text);
    client
        .set_data(&a, b"short".to_vec())
        .compressed()
        .await
        .unwrap();
    let (data, _, _watch) = client.get_data(&a).decompressed().watched().await.unwrap();
    assert_eq!(data, b"short");
    // Data that is not compressed is an error, not garbage.
    let plain = format!("{root}/plain");
    client.create(&plain).data(b"plain").await.unwrap();
    assert!(matches!(
        client.get_data(&plain).decompressed().await,
        Err(Error::Compression(_))
    ));
    // The size limit applies to what is stored: 2 MiB of zeros fit once compressed.
    let big = format!("{root}/big");
    client
        .create(&big)
        .data(vec![0u8; 2 << 20])
        .compressed()
        .await
        .unwrap();
    assert_eq!(
        client.get_data(&big).decompressed().await.unwrap().0.len(),
        2 << 20
    );

    // Client-wide: every write compressed, every read decompressed, transactions and
    // multi-reads included; a plain client sees gzip.
    let everything = support::client_builder(env.connect_string())
        .enable_compression()
        .build()
        .unwrap();
    let (b, c) = (format!("{root}/b"), format!("{root}/c"));
    everything.create(&b).data(text.clone()).await.unwrap();
    everything
        .transaction()
        .create(&c, &text)
        .set_data(&b, b"updated", 0)
        .await
        .unwrap();
    assert!(is_gzip(&client.get_data(&c).await.unwrap().0));
    assert!(client
        .get_data(&b)
        .await
        .unwrap()
        .0
        .starts_with(&[0x1f, 0x8b]));
    assert_eq!(everything.get_data(&c).await.unwrap().0, text);
    // Nodes without data (here the root, as parents made by creates) read as empty.
    assert_eq!(everything.get_data(&root).await.unwrap().0, b"");
    let reads = everything.multi_read().get_data(&b).get_data(&plain);
    if let Some(reads) = env.since((3, 6), reads).await {
        assert!(matches!(&reads[0], ReadResult::Data { data, .. } if data == b"updated"));
        assert!(matches!(
            &reads[1],
            ReadResult::Error(Error::Compression(_))
        ));
    }

    everything.close().await.unwrap();
    support::remove_tree(&client, &root).await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_reply_over_the_limit_fails_its_request_alone_and_keeps_the_connection() {
    const LIMIT: usize = 64 * 1024;
    let env = env_or_skip!();
    let proxy = support::Proxy::start(env.connect_string())
        .await
        .expect("proxy starts");
    let client = support::client_builder(&proxy.connect_string())
        .max_reply_len(LIMIT)
        .build()
        .expect("client");
    client
        .block_until_connected(support::PATIENCE)
        .await
        .expect("connected");
    let root = support::unique_root();
    let big = format!("{root}/big");
    let many = format!("{root}/many");
    client.create(&root).await.unwrap();
    // Data over several reads of the socket: the skipped body spans them.
    client.create(&big).data(vec![7u8; 300_000]).await.unwrap();
    client.create(&many).data(b"m").await.unwrap();
    // Children whose names take more than the limit: what the limit is usually met with.
    let names: Vec<String> = (0..700).map(|i| format!("{i:0>100}")).collect();
    let creates = names
        .iter()
        .map(|name| client.create(&format!("{many}/{name}")).into_future());
    futures::future::try_join_all(creates).await.unwrap();
    let session = client.session_id();

    // Pipelined: the replies around the large ones arrive on the same connection.
    let (before, data, children, watched, after) = tokio::join!(
        client.get_data(&many).into_future(),
        client.get_data(&big).into_future(),
        client.get_children(&many).into_future(),
        client.get_data(&many).watched().into_future(),
        client.exists(&big).into_future(),
    );
    assert_eq!(before.unwrap().0, b"m");
    // Reply header 16 + data (length prefix 4 + bytes) + stat 68.
    assert_eq!(
        data,
        Err(Error::ReplyTooLarge {
            len: 16 + 4 + 300_000 + 68,
            max: LIMIT
        })
    );
    // Reply header 16 + count 4 + 700 names (length prefix 4 + 100 bytes).
    assert_eq!(
        children,
        Err(Error::ReplyTooLarge {
            len: 16 + 4 + 700 * 104,
            max: LIMIT
        })
    );
    assert!(!data.unwrap_err().is_retryable());
    let (_, _, watch) = watched.unwrap();
    assert_eq!(after.unwrap().map(|s| s.data_length), Some(300_000));
    assert_eq!(proxy.connections_forwarded(), 1, "the connection stayed up");
    assert_eq!(client.session_id(), session);
    // The connection still carries replies and notifications.
    client.set_data(&many, b"changed").await.unwrap();
    let event = tokio::time::timeout(support::PATIENCE, watch)
        .await
        .expect("the watch fires");
    assert_eq!(event.event_type, zk::client::EventType::NodeDataChanged);

    // A client allowed larger replies reads them.
    let roomy = support::client_builder(env.connect_string())
        .max_reply_len(1024 * 1024)
        .build()
        .expect("client");
    assert_eq!(roomy.get_children(&many).await.unwrap().len(), 700);
    assert_eq!(roomy.get_data(&big).await.unwrap().0.len(), 300_000);

    support::remove_tree(&roomy, &root).await;
    roomy.close().await.unwrap();
    client.close().await.unwrap();
}

/// A wait for a connection that never comes says which servers were tried and why the latest
/// attempt failed (what a newcomer without a running server sees first).
#[tokio::test]
async fn a_connection_that_never_comes_is_explained() {
    let connect = support::closed_address().to_string();
    let client = Client::connect(&connect).unwrap();
    match client.block_until_connected(Duration::from_secs(3)).await {
        Err(Error::Connect(message)) => {
            assert!(message.contains(&connect), "{message}");
            assert!(message.to_lowercase().contains("refused"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
