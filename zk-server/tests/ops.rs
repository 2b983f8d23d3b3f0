//! Every operation against a TestingServer, checked at the wire level: results, stats and
//! error codes as Apache ZooKeeper 3.8 produces them.

mod support;

use support::RawClient;
use zk_proto::*;
use zk_server::TestingServer;

async fn server_and_client() -> (TestingServer, RawClient) {
    let server = TestingServer::start().await.expect("server starts");
    let client = RawClient::connect(&server.connect_string()).await;
    (server, client)
}

#[tokio::test]
async fn fresh_server_has_the_builtin_nodes() {
    let (_server, mut c) = server_and_client().await;
    assert_eq!(c.children("/", false).await, Ok(vec!["zookeeper".into()]));
    assert_eq!(
        c.children("/zookeeper", false).await,
        Ok(vec!["config".into(), "quota".into()])
    );
    let (acl, _) = c.get_acl("/zookeeper/config").await.unwrap();
    assert_eq!(acl, Acl::read_unsafe());
    // Every node but the root: /zookeeper, /zookeeper/quota, /zookeeper/config.
    let (h, body) = c
        .call(
            OpCode::GetAllChildrenNumber,
            &GetAllChildrenNumberRequest { path: "/".into() },
        )
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(
        GetAllChildrenNumberResponse::from_bytes(&body)
            .unwrap()
            .total_number,
        3
    );
}

#[tokio::test]
async fn create_get_set_delete_with_apache_stats() {
    let (_server, mut c) = server_and_client().await;
    let (path, stat) = c
        .create_full(
            "/a",
            Some(b"hello"),
            Acl::open_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
    assert_eq!(path, "/a");
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(stat.czxid, stat.pzxid);
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!(stat.data_length, 5);
    assert_eq!(stat.ephemeral_owner, 0);
    assert!(stat.ctime > 1_600_000_000_000 && stat.ctime == stat.mtime);

    let (data, got) = c.get_data("/a", false).await.unwrap();
    assert_eq!(data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(got, stat);

    let after = c.set_data("/a", b"world!", 0).await.unwrap();
    assert_eq!(after.version, 1);
    assert!(after.mzxid > stat.mzxid);
    assert_eq!(after.czxid, stat.czxid);
    assert_eq!(after.data_length, 6);
    assert_eq!(c.set_data("/a", b"x", 0).await, Err(ErrorCode::BadVersion));
    assert!(c.set_data("/a", b"x", -1).await.is_ok());

    assert_eq!(c.delete("/a", 0).await, Err(ErrorCode::BadVersion));
    assert_eq!(c.delete("/a", 2).await, Ok(()));
    assert_eq!(c.get_data("/a", false).await, Err(ErrorCode::NoNode));
    assert_eq!(c.delete("/a", -1).await, Err(ErrorCode::NoNode));
    assert_eq!(c.exists("/a", false).await, Err(ErrorCode::NoNode));
}

#[tokio::test]
async fn create_errors() {
    let (_server, mut c) = server_and_client().await;
    assert_eq!(
        c.create("/missing/child", b"", CreateMode::Persistent)
            .await,
        Err(ErrorCode::NoNode)
    );
    c.create("/p", b"", CreateMode::Persistent).await.unwrap();
    assert_eq!(
        c.create("/p", b"", CreateMode::Persistent).await,
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(
        c.create("/", b"", CreateMode::Persistent).await,
        Err(ErrorCode::NodeExists)
    );
    c.create("/p/e", b"", CreateMode::Ephemeral).await.unwrap();
    assert_eq!(
        c.create("/p/e/child", b"", CreateMode::Persistent).await,
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    for bad in ["p", "/p/", "/p//q", "/p/.", "/p/..", "/p/\u{1}"] {
        assert_eq!(
            c.create(bad, b"", CreateMode::Persistent).await,
            Err(ErrorCode::BadArguments),
            "{bad:?}"
        );
    }
    let (h, _) = c
        .call(
            OpCode::Create,
            &CreateRequest {
                path: "/flags".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 7,
            },
        )
        .await;
    assert_eq!(h.err, ErrorCode::BadArguments.as_i32());
    assert_eq!(
        c.create_full("/noacl", None, vec![], CreateMode::Persistent)
            .await,
        Err(ErrorCode::InvalidAcl)
    );
    assert_eq!(c.delete("/p", -1).await, Err(ErrorCode::NotEmpty));
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(
            c.delete(special, -1).await,
            Err(ErrorCode::BadArguments),
            "{special}"
        );
    }
}

/// Apache validates paths only on writes that name a node to change (create, setData, setACL,
/// check): reads and delete look the path up as given, so a malformed path is NONODE there.
#[tokio::test]
async fn malformed_paths_are_bad_arguments_on_writes_and_no_node_elsewhere() {
    let (_server, mut c) = server_and_client().await;
    c.create("/p", b"", CreateMode::Persistent).await.unwrap();
    for bad in ["/p/", "/p//q", "/p/.", "p"] {
        assert_eq!(
            c.set_data(bad, b"x", -1).await,
            Err(ErrorCode::BadArguments),
            "setData {bad:?}"
        );
        assert_eq!(
            c.exists(bad, false).await,
            Err(ErrorCode::NoNode),
            "{bad:?}"
        );
        assert_eq!(
            c.get_data(bad, false).await.map(|_| ()),
            Err(ErrorCode::NoNode),
            "getData {bad:?}"
        );
        assert_eq!(
            c.children(bad, false).await,
            Err(ErrorCode::NoNode),
            "getChildren {bad:?}"
        );
        assert_eq!(
            c.get_acl(bad).await.map(|_| ()),
            Err(ErrorCode::NoNode),
            "getACL {bad:?}"
        );
    }
    for bad in ["/p/", "/p//q", "/p/.", "/q/"] {
        assert_eq!(c.delete(bad, -1).await, Err(ErrorCode::NoNode), "{bad:?}");
    }
    for bad in ["p", "/p/\u{0}"] {
        assert_eq!(
            c.delete(bad, -1).await,
            Err(ErrorCode::BadArguments),
            "{bad:?}"
        );
    }
    assert_eq!(
        c.exists("/p/\u{0}", true).await,
        Err(ErrorCode::BadArguments)
    );
    assert!(c.exists("/p", false).await.is_ok(), "/p untouched");
}

#[tokio::test]
async fn sequential_names_follow_the_parents_creation_count() {
    let (_server, mut c) = server_and_client().await;
    c.create("/q", b"", CreateMode::Persistent).await.unwrap();
    assert_eq!(
        c.create("/q/n-", b"", CreateMode::PersistentSequential)
            .await
            .unwrap(),
        "/q/n-0000000000"
    );
    c.create("/q/plain", b"", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        c.create("/q/n-", b"", CreateMode::EphemeralSequential)
            .await
            .unwrap(),
        "/q/n-0000000002"
    );
    c.delete("/q/plain", -1).await.unwrap();
    // Deletes do not reuse numbers.
    assert_eq!(
        c.create("/q/", b"", CreateMode::PersistentSequential)
            .await
            .unwrap(),
        "/q/0000000003"
    );
}

#[tokio::test]
async fn parent_stat_counts_creates_and_deletes() {
    let (_server, mut c) = server_and_client().await;
    c.create("/s", b"", CreateMode::Persistent).await.unwrap();
    c.create("/s/a", b"", CreateMode::Persistent).await.unwrap();
    c.create("/s/b", b"", CreateMode::Persistent).await.unwrap();
    c.delete("/s/a", -1).await.unwrap();
    let (children, stat) = c.children2("/s").await.unwrap();
    assert_eq!(children, vec!["b".to_string()]);
    assert_eq!(stat.num_children, 1);
    // Visible cversion = 2 × creates − children = 2 × 2 − 1.
    assert_eq!(stat.cversion, 3);
    let b = c.exists("/s/b", false).await.unwrap();
    assert!(stat.pzxid > b.czxid, "the delete moved pzxid");
}

#[tokio::test]
async fn null_and_empty_data() {
    let (_server, mut c) = server_and_client().await;
    let (_, stat) = c
        .create_full("/n", None, Acl::open_unsafe(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(stat.data_length, 0);
    assert_eq!(c.get_data("/n", false).await.unwrap().0, None);
    c.create("/e", b"", CreateMode::Persistent).await.unwrap();
    assert_eq!(c.get_data("/e", false).await.unwrap().0, Some(vec![]));
}

#[tokio::test]
async fn containers_report_owner_zero_and_disappear_when_emptied() {
    let server = TestingServer::builder()
        .container_check_interval_ms(50)
        .start()
        .await
        .unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    let (_, stat) = c
        .create_full("/c", None, Acl::open_unsafe(), CreateMode::Container)
        .await
        .unwrap();
    assert_eq!(stat.ephemeral_owner, 0);
    // A never-used container stays.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(c.exists("/c", false).await.is_ok());
    c.create("/c/x", b"", CreateMode::Persistent).await.unwrap();
    c.delete("/c/x", -1).await.unwrap();
    let deadline = std::time::Instant::now() + support::WAIT;
    while c.exists("/c", false).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "emptied container not deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ttl_nodes() {
    let server = TestingServer::builder()
        .container_check_interval_ms(50)
        .start()
        .await
        .unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    let (path, stat) = c
        .create_ttl("/ttl", CreateMode::PersistentWithTtl, 200)
        .await
        .unwrap();
    assert_eq!(path, "/ttl");
    assert_eq!(stat.ephemeral_owner, 0, "TTL nodes report owner 0");
    let (seq, _) = c
        .create_ttl("/ttl-", CreateMode::PersistentSequentialWithTtl, 60_000)
        .await
        .unwrap();
    assert!(seq.starts_with("/ttl-00000"));
    assert_eq!(
        c.create_ttl("/bad", CreateMode::PersistentWithTtl, 0).await,
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        c.create_ttl("/bad", CreateMode::Persistent, 100).await,
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        c.create_ttl("/bad", CreateMode::PersistentWithTtl, 1 << 40)
            .await,
        Err(ErrorCode::BadArguments)
    );
    // TTL flags with a plain create opcode carry no TTL: rejected.
    let (h, _) = c
        .call(
            OpCode::Create2,
            &CreateRequest {
                path: "/bad".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 5,
            },
        )
        .await;
    assert_eq!(h.err, ErrorCode::BadArguments.as_i32());
    let deadline = std::time::Instant::now() + support::WAIT;
    while c.exists("/ttl", false).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "expired TTL node not deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        c.exists(&seq, false).await.is_ok(),
        "unexpired TTL node kept"
    );

    let disabled = TestingServer::builder()
        .extended_types(false)
        .start()
        .await
        .unwrap();
    let mut d = RawClient::connect(&disabled.connect_string()).await;
    assert_eq!(
        d.create_ttl("/t", CreateMode::PersistentWithTtl, 1000)
            .await,
        Err(ErrorCode::Unimplemented)
    );
}

#[tokio::test]
async fn create_opcode_variants() {
    let (_server, mut c) = server_and_client().await;
    // create (1) answers with the path only.
    let (h, body) = c
        .call(
            OpCode::Create,
            &CreateRequest {
                path: "/one".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
            },
        )
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(CreateResponse::from_bytes(&body).unwrap().path, "/one");
    // Container flag with create2 gives a plain persistent node (as Apache).
    let (h, body) = c
        .call(
            OpCode::Create2,
            &CreateRequest {
                path: "/plain".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 4,
            },
        )
        .await;
    assert_eq!(h.err, 0);
    let r = Create2Response::from_bytes(&body).unwrap();
    assert_eq!(r.path, "/plain");
    assert!(h.zxid == r.stat.czxid, "a write's reply carries its zxid");
}

#[tokio::test]
async fn multi_is_atomic_with_apache_result_pattern() {
    let (_server, mut c) = server_and_client().await;
    c.create("/m", b"v0", CreateMode::Persistent).await.unwrap();
    let results = c
        .multi(vec![
            MultiOp::Create(CreateRequest {
                path: "/m/a".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
            }),
            MultiOp::Create2(CreateRequest {
                path: "/m/b".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/m".into(),
                data: Some(b"v1".to_vec()),
                version: 0,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/m".into(),
                version: 1,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/m/a".into(),
                version: 0,
            }),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(
        results[0],
        MultiResult::Create(CreateResponse {
            path: "/m/a".into()
        })
    );
    let MultiResult::Create2(r) = &results[1] else {
        panic!("{:?}", results[1])
    };
    assert_eq!(r.path, "/m/b");
    let MultiResult::SetData(s) = &results[2] else {
        panic!("{:?}", results[2])
    };
    assert_eq!(s.stat.version, 1);
    assert_eq!(results[3], MultiResult::Check);
    assert_eq!(results[4], MultiResult::Delete);
    // All sub-ops share one zxid.
    assert_eq!(r.stat.czxid, s.stat.mzxid);

    let before = c.children("/m", false).await.unwrap();
    let results = c
        .multi(vec![
            MultiOp::Create(CreateRequest {
                path: "/m/c".into(),
                data: None,
                acl: Acl::open_unsafe(),
                flags: 0,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/m".into(),
                version: 7,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/m/b".into(),
                version: -1,
            }),
        ])
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![
            MultiResult::Error(0),
            MultiResult::Error(-103),
            MultiResult::Error(-2)
        ]
    );
    assert_eq!(
        c.children("/m", false).await.unwrap(),
        before,
        "nothing applied"
    );
    assert_eq!(c.multi(vec![]).await, Ok(vec![]));
}

#[tokio::test]
async fn multi_read_results_are_independent() {
    let (_server, mut c) = server_and_client().await;
    c.create("/r", b"data", CreateMode::Persistent)
        .await
        .unwrap();
    c.create("/r/kid", b"", CreateMode::Persistent)
        .await
        .unwrap();
    let results = c
        .multi_read(vec![
            MultiOp::GetData(GetDataRequest {
                path: "/r".into(),
                watch: false,
            }),
            MultiOp::GetChildren(GetChildrenRequest {
                path: "/missing".into(),
                watch: false,
            }),
            MultiOp::GetChildren(GetChildrenRequest {
                path: "/r".into(),
                watch: false,
            }),
        ])
        .await
        .unwrap();
    let MultiResult::GetData(d) = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(d.data.as_deref(), Some(&b"data"[..]));
    assert_eq!(results[1], MultiResult::Error(ErrorCode::NoNode.as_i32()));
    assert_eq!(
        results[2],
        MultiResult::GetChildren(GetChildrenResponse {
            children: vec!["kid".into()]
        })
    );
}

#[tokio::test]
async fn session_local_queries() {
    let (server, mut c) = server_and_client().await;
    c.create("/x", b"", CreateMode::Persistent).await.unwrap();
    c.create("/x/e1", b"", CreateMode::Ephemeral).await.unwrap();
    c.create("/y", b"", CreateMode::Ephemeral).await.unwrap();
    let mut other = RawClient::connect(&server.connect_string()).await;
    other
        .create("/x/theirs", b"", CreateMode::Ephemeral)
        .await
        .unwrap();

    let (h, body) = c
        .call(
            OpCode::GetEphemerals,
            &GetEphemeralsRequest {
                prefix_path: "/x".into(),
            },
        )
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(
        GetEphemeralsResponse::from_bytes(&body).unwrap().ephemerals,
        vec!["/x/e1".to_string()]
    );
    let (_, body) = c
        .call(
            OpCode::GetEphemerals,
            &GetEphemeralsRequest {
                prefix_path: "/".into(),
            },
        )
        .await;
    let mut all = GetEphemeralsResponse::from_bytes(&body).unwrap().ephemerals;
    all.sort();
    assert_eq!(all, vec!["/x/e1".to_string(), "/y".to_string()]);

    let (_, body) = c
        .call(
            OpCode::GetAllChildrenNumber,
            &GetAllChildrenNumberRequest { path: "/x".into() },
        )
        .await;
    assert_eq!(
        GetAllChildrenNumberResponse::from_bytes(&body)
            .unwrap()
            .total_number,
        2
    );

    let (_, body) = c.call_empty(OpCode::WhoAmI).await;
    let who = WhoAmIResponse::from_bytes(&body).unwrap();
    assert_eq!(
        who.client_info,
        vec![ClientInfo {
            auth_scheme: "ip".into(),
            user: "127.0.0.1".into()
        }]
    );
    c.add_digest("alice", "pw").await.unwrap();
    let (_, body) = c.call_empty(OpCode::WhoAmI).await;
    let who = WhoAmIResponse::from_bytes(&body).unwrap();
    assert!(who.client_info.contains(&ClientInfo {
        auth_scheme: "digest".into(),
        user: "alice".into()
    }));

    let (h, body) = c
        .call(OpCode::Sync, &SyncRequest { path: "/x".into() })
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(SyncResponse::from_bytes(&body).unwrap().path, "/x");

    let (h, _) = c
        .call(OpCode::Reconfig, &support::reconfig_adding_a_member())
        .await;
    assert_eq!(h.err, ErrorCode::ReconfigDisabled.as_i32());
}

#[tokio::test]
async fn acl_versions() {
    let (_server, mut c) = server_and_client().await;
    c.create("/acl", b"", CreateMode::Persistent).await.unwrap();
    let stat = c.set_acl("/acl", Acl::read_unsafe(), 0).await.unwrap();
    assert_eq!(stat.aversion, 1);
    assert_eq!(stat.version, 0);
    assert_eq!(
        c.set_acl("/acl", Acl::open_unsafe(), 0).await,
        Err(ErrorCode::NoAuth),
        "READ only now"
    );
    assert_eq!(c.get_acl("/acl").await.unwrap().0, Acl::read_unsafe());
    assert_eq!(
        c.set_acl("/missing", Acl::open_unsafe(), -1).await,
        Err(ErrorCode::NoNode)
    );
}
