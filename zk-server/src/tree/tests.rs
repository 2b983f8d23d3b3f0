use super::*;
use zk_proto::{CloseSessionTxn, CreateTxn, DeleteTxn, MultiTxn, SetDataTxn};

fn create(zxid: i64, session: i64, path: &str, ephemeral: bool, parent_cversion: i32) -> Txn {
    Txn::new(
        session,
        1,
        zxid,
        1000 + zxid,
        TxnBody::Create(CreateTxn {
            path: path.into(),
            data: Some(b"d".to_vec()),
            acl: Acl::open_unsafe(),
            ephemeral,
            parent_cversion,
        }),
    )
}

fn apply(tree: &mut DataTree, txn: &Txn) -> (TxnOutcome, Vec<WatchTrigger>) {
    let mut triggers = Vec::new();
    let outcome = tree.apply(txn, &mut triggers);
    (outcome, triggers)
}

#[test]
fn create_sets_stats_and_fires_created_and_children_changed() {
    let mut tree = DataTree::new();
    let (outcome, triggers) = apply(&mut tree, &create(5, 9, "/a", false, 1));
    let TxnOutcome::Created { path, stat } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(path, "/a");
    assert_eq!(
        (stat.czxid, stat.mzxid, stat.pzxid, stat.ctime),
        (5, 5, 5, 1005)
    );
    let events: Vec<_> = triggers
        .iter()
        .map(|t| (t.path.as_str(), t.event))
        .collect();
    assert_eq!(
        events,
        vec![
            ("/a", EventType::NodeCreated),
            ("/", EventType::NodeChildrenChanged)
        ]
    );
    assert_eq!(tree.last_processed_zxid(), 5);
    let root = tree.get("/").unwrap();
    assert_eq!(root.stat.cversion, 1);
    assert_eq!(root.stat.pzxid, 5);
}

#[test]
fn visible_cversion_counts_creates_and_deletes() {
    let mut tree = DataTree::new();
    apply(&mut tree, &create(1, 0, "/p", false, 1));
    apply(&mut tree, &create(2, 0, "/p/a", false, 1));
    apply(&mut tree, &create(3, 0, "/p/b", false, 2));
    apply(
        &mut tree,
        &Txn::new(
            0,
            1,
            4,
            0,
            TxnBody::Delete(DeleteTxn {
                path: "/p/a".into(),
            }),
        ),
    );
    let stat = tree.get("/p").unwrap().client_stat();
    assert_eq!(stat.num_children, 1);
    assert_eq!(stat.cversion, 3, "two creates and one delete");
    assert_eq!(stat.pzxid, 4);
}

#[test]
fn close_session_deletes_its_ephemerals_only() {
    let mut tree = DataTree::new();
    apply(&mut tree, &create(1, 7, "/e1", true, 1));
    apply(&mut tree, &create(2, 8, "/e2", true, 2));
    assert_eq!(tree.ephemerals_of(7), vec!["/e1".to_string()]);
    assert_eq!(tree.ephemeral_count(), 2);
    let close = Txn::new(
        7,
        0,
        3,
        0,
        TxnBody::CloseSession(CloseSessionTxn::default()),
    );
    let (outcome, triggers) = apply(&mut tree, &close);
    assert_eq!(outcome, TxnOutcome::SessionClosed(vec!["/e1".into()]));
    assert!(tree.get("/e1").is_none() && tree.get("/e2").is_some());
    assert_eq!(triggers[0].event, EventType::NodeDeleted);
}

#[test]
fn failed_multi_applies_nothing() {
    let mut tree = DataTree::new();
    let bodies = vec![
        TxnBody::Error(zk_proto::ErrorTxn { err: 0 }),
        TxnBody::Error(zk_proto::ErrorTxn {
            err: ErrorCode::NoNode.as_i32(),
        }),
    ];
    let txn = Txn::new(0, 1, 1, 0, TxnBody::Multi(MultiTxn::from_bodies(&bodies)));
    let (outcome, triggers) = apply(&mut tree, &txn);
    assert_eq!(
        outcome,
        TxnOutcome::Multi(vec![
            TxnOutcome::Error(ErrorCode::Ok),
            TxnOutcome::Error(ErrorCode::NoNode)
        ])
    );
    assert!(triggers.is_empty());
}

#[test]
fn set_data_bumps_version_and_mzxid() {
    let mut tree = DataTree::new();
    apply(&mut tree, &create(1, 0, "/d", false, 1));
    let set = Txn::new(
        0,
        1,
        2,
        77,
        TxnBody::SetData(SetDataTxn {
            path: "/d".into(),
            data: None,
            version: 1,
        }),
    );
    let (outcome, _) = apply(&mut tree, &set);
    let TxnOutcome::DataSet(stat) = outcome else {
        panic!()
    };
    assert_eq!(
        (stat.version, stat.mzxid, stat.mtime, stat.data_length),
        (1, 2, 77, 0)
    );
}

#[test]
fn replay_errors_do_not_panic() {
    let mut tree = DataTree::new();
    let (outcome, _) = apply(&mut tree, &create(1, 0, "/missing/child", false, 1));
    assert_eq!(outcome, TxnOutcome::Error(ErrorCode::NoNode));
    let (outcome, _) = apply(
        &mut tree,
        &Txn::new(
            0,
            1,
            2,
            0,
            TxnBody::Delete(DeleteTxn {
                path: "/zookeeper".into(),
            }),
        ),
    );
    assert_eq!(outcome, TxnOutcome::Error(ErrorCode::NotEmpty));
}

#[test]
fn walks_parents_first_and_counts_descendants() {
    let mut tree = DataTree::new();
    apply(&mut tree, &create(1, 0, "/a", false, 1));
    apply(&mut tree, &create(2, 0, "/a/b", false, 1));
    apply(&mut tree, &create(3, 0, "/a/b/c", false, 1));
    apply(&mut tree, &create(4, 0, "/a/d", false, 2));
    let image = tree.image();
    let walk = |top: &str| {
        let mut walked = Vec::new();
        image
            .try_walk(top, |path, node| {
                let own = image.get(path).expect("walked paths exist");
                assert!(std::ptr::eq(node, own), "{path} comes with its own node");
                walked.push(path.to_owned());
                Ok::<_, ()>(())
            })
            .unwrap();
        walked
    };
    let walked = walk("/");
    let pos = |p: &str| walked.iter().position(|w| w == p).unwrap();
    assert!(walk("/missing").is_empty());
    assert!(pos("/") < pos("/a") && pos("/a") < pos("/a/b") && pos("/a/b") < pos("/a/b/c"));
    assert!(pos("/a") < pos("/a/d"));
    assert_eq!(walked.len(), tree.node_count());
    let mut below_a = walk("/a");
    below_a.sort();
    assert_eq!(below_a, ["/a", "/a/b", "/a/b/c", "/a/d"]);
    // The first error stops the walk: nothing after /a (its children come after it).
    let mut visited = Vec::new();
    let stopped = image.try_walk("/", |path, _| {
        visited.push(path.to_owned());
        if path == "/a" {
            Err(path.to_owned())
        } else {
            Ok(())
        }
    });
    assert_eq!(stopped, Err("/a".to_owned()));
    assert_eq!(visited.last().map(String::as_str), Some("/a"));
    assert!(visited.len() < walked.len());
    assert_eq!(tree.count_descendants("/a"), 3);
    assert_eq!(tree.count_descendants("/"), 7);
}

#[test]
fn containers_and_ttls_become_candidates() {
    let mut tree = DataTree::new();
    let container = |zxid, path: &str, parent_cversion| {
        Txn::new(
            0,
            1,
            zxid,
            100,
            TxnBody::CreateContainer(zk_proto::CreateContainerTxn {
                path: path.into(),
                data: None,
                acl: Acl::open_unsafe(),
                parent_cversion,
            }),
        )
    };
    apply(&mut tree, &container(1, "/c", 1));
    assert!(
        tree.expired_containers_and_ttls(10_000, 0).is_empty(),
        "never used"
    );
    assert_eq!(
        tree.expired_containers_and_ttls(10_000, 500),
        vec!["/c".to_string()],
        "never used, too long"
    );
    apply(&mut tree, &create(2, 0, "/c/x", false, 1));
    assert!(
        tree.expired_containers_and_ttls(10_000, 0).is_empty(),
        "has a child"
    );
    apply(
        &mut tree,
        &Txn::new(
            0,
            1,
            3,
            0,
            TxnBody::Delete(DeleteTxn {
                path: "/c/x".into(),
            }),
        ),
    );
    assert_eq!(
        tree.expired_containers_and_ttls(10_000, 0),
        vec!["/c".to_string()]
    );
    let ttl = Txn::new(
        0,
        1,
        4,
        1000,
        TxnBody::CreateTtl(zk_proto::CreateTtlTxn {
            path: "/t".into(),
            data: None,
            acl: Acl::open_unsafe(),
            parent_cversion: 3,
            ttl: 50,
        }),
    );
    apply(&mut tree, &ttl);
    assert!(!tree
        .expired_containers_and_ttls(1040, 0)
        .contains(&"/t".to_string()));
    assert!(tree
        .expired_containers_and_ttls(1051, 0)
        .contains(&"/t".to_string()));
}

#[test]
fn image_is_frozen_while_the_tree_changes() {
    let mut tree = DataTree::new();
    apply(&mut tree, &create(1, 0, "/a", false, 1));
    let image = tree.image();
    let set = Txn::new(
        0,
        1,
        2,
        0,
        TxnBody::SetData(SetDataTxn {
            path: "/a".into(),
            data: None,
            version: 1,
        }),
    );
    apply(&mut tree, &set);
    apply(&mut tree, &create(3, 0, "/b", false, 2));
    assert_eq!(image.get("/a").unwrap().stat.version, 0, "copy on write");
    assert!(image.get("/b").is_none());
    assert_eq!(tree.get("/a").unwrap().stat.version, 1);
}

#[test]
fn built_in_nodes_hold_empty_data_and_the_config_node_acl_version_minus_one() {
    let tree = DataTree::new();
    for path in ["/", ZOOKEEPER_PATH, QUOTA_PATH, CONFIG_PATH] {
        let node = tree.get(path).unwrap();
        assert_eq!(
            node.data.as_deref(),
            Some(&[][..]),
            "{path}: empty, not null"
        );
    }
    assert_eq!(tree.get(CONFIG_PATH).unwrap().stat.aversion, -1);
    assert_eq!(tree.get("/").unwrap().stat.aversion, 0);
}
