use super::*;
use zk_proto::{CreateRequest, DeleteRequest, Txn};

fn ctx<'a>(tree: &'a DataTree, zxid: i64, auth: &'a [Id]) -> PrepContext<'a> {
    PrepContext {
        tree,
        session_id: 42,
        auth,
        zxid,
        time: 1000,
        extended_types: true,
    }
}

fn create_req(path: &str, mode: CreateMode) -> zk_proto::CreateRequest {
    CreateRequest {
        path: path.into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: mode.flags(),
    }
}

#[test]
fn pipelined_writes_see_earlier_pending_ones() {
    let tree = DataTree::new();
    let mut pending = PendingChanges::default();
    let parent = create_req("/p", CreateMode::Persistent);
    prepare_write(
        &ctx(&tree, 1, &[]),
        &mut pending,
        WriteRequest::Create(&parent),
    )
    .unwrap();
    // The parent exists only in the overlay, yet the child's create succeeds.
    let child = create_req("/p/c-", CreateMode::PersistentSequential);
    let body = prepare_write(
        &ctx(&tree, 2, &[]),
        &mut pending,
        WriteRequest::Create(&child),
    )
    .unwrap();
    let TxnBody::Create(t) = body else { panic!() };
    assert_eq!(t.path, "/p/c-0000000000");
    assert_eq!(t.parent_cversion, 1);
    let body = prepare_write(
        &ctx(&tree, 3, &[]),
        &mut pending,
        WriteRequest::Create(&child),
    )
    .unwrap();
    let TxnBody::Create(t) = body else { panic!() };
    assert_eq!(
        t.path, "/p/c-0000000001",
        "sequence numbers advance through the overlay"
    );
    // Deleting the parent now fails: it has pending children.
    let delete = DeleteRequest {
        path: "/p".into(),
        version: -1,
    };
    assert_eq!(
        prepare_write(
            &ctx(&tree, 4, &[]),
            &mut pending,
            WriteRequest::Delete(&delete)
        ),
        Err(PrepError::Code(ErrorCode::NotEmpty))
    );
    // Creating the parent again fails: it exists in the overlay.
    assert_eq!(
        prepare_write(
            &ctx(&tree, 4, &[]),
            &mut pending,
            WriteRequest::Create(&parent)
        ),
        Err(PrepError::Code(ErrorCode::NodeExists))
    );
    pending.applied(3);
    assert!(pending.is_empty(), "records drop out once applied");
}

#[test]
fn failed_multi_leaves_no_overlay() {
    let tree = DataTree::new();
    let mut pending = PendingChanges::default();
    let ops = vec![
        MultiOp::Create(create_req("/m", CreateMode::Persistent)),
        MultiOp::Delete(DeleteRequest {
            path: "/missing".into(),
            version: -1,
        }),
        MultiOp::Create(create_req("/n", CreateMode::Persistent)),
    ];
    assert_eq!(
        prepare_write(&ctx(&tree, 1, &[]), &mut pending, WriteRequest::Multi(&ops)),
        Err(PrepError::Multi(vec![0, ErrorCode::NoNode.as_i32(), -2]))
    );
    assert!(pending.is_empty());
    // A multi's later ops see its earlier ones.
    let ops = vec![
        MultiOp::Create(create_req("/m", CreateMode::Persistent)),
        MultiOp::Create(create_req("/m/k", CreateMode::Persistent)),
        MultiOp::Delete(DeleteRequest {
            path: "/m/k".into(),
            version: 0,
        }),
    ];
    assert!(prepare_write(&ctx(&tree, 1, &[]), &mut pending, WriteRequest::Multi(&ops)).is_ok());
}

#[test]
fn close_session_lists_pending_ephemerals_too() {
    let mut tree = DataTree::new();
    let mut triggers = Vec::new();
    let committed = Txn::new(
        42,
        1,
        1,
        0,
        TxnBody::Create(zk_proto::CreateTxn {
            path: "/old".into(),
            data: None,
            acl: Acl::open_unsafe(),
            ephemeral: true,
            parent_cversion: 1,
        }),
    );
    tree.apply(&committed, &mut triggers);
    let mut pending = PendingChanges::default();
    let eph = create_req("/new", CreateMode::Ephemeral);
    prepare_write(
        &ctx(&tree, 2, &[]),
        &mut pending,
        WriteRequest::Create(&eph),
    )
    .unwrap();
    let body = prepare_close_session(&ctx(&tree, 3, &[]), &mut pending);
    assert_eq!(
        body,
        TxnBody::CloseSession(zk_proto::CloseSessionTxn {
            paths_to_delete: vec!["/new".into(), "/old".into()]
        })
    );
    assert_eq!(pending.lookup(&tree, "/old"), None, "staged as deleted");
}

#[test]
fn permission_and_validation_errors() {
    let tree = DataTree::new();
    let mut pending = PendingChanges::default();
    let secret = vec![Acl::new(Perms::ALL, Id::digest("u", "p"))];
    let req = CreateRequest {
        path: "/s".into(),
        data: None,
        acl: secret,
        flags: 0,
    };
    let owner = [Id::digest("u", "p")];
    prepare_write(
        &ctx(&tree, 1, &owner),
        &mut pending,
        WriteRequest::Create(&req),
    )
    .unwrap();
    let child = create_req("/s/c", CreateMode::Persistent);
    assert_eq!(
        prepare_write(
            &ctx(&tree, 2, &[]),
            &mut pending,
            WriteRequest::Create(&child)
        ),
        Err(PrepError::Code(ErrorCode::NoAuth))
    );
    let ttl = zk_proto::CreateTtlRequest {
        path: "/t".into(),
        data: None,
        acl: Acl::open_unsafe(),
        flags: CreateMode::PersistentWithTtl.flags(),
        ttl: 10,
    };
    let mut disabled = ctx(&tree, 2, &[]);
    disabled.extended_types = false;
    assert_eq!(
        prepare_write(&disabled, &mut pending, WriteRequest::CreateTtl(&ttl)),
        Err(PrepError::Code(ErrorCode::Unimplemented))
    );
}

#[test]
fn applied_keeps_records_overwritten_by_later_txns() {
    let tree = DataTree::new();
    let mut pending = PendingChanges::default();
    let a = create_req("/a", CreateMode::Persistent);
    prepare_write(&ctx(&tree, 1, &[]), &mut pending, WriteRequest::Create(&a)).unwrap();
    let set = zk_proto::SetDataRequest {
        path: "/a".into(),
        data: None,
        version: -1,
    };
    prepare_write(
        &ctx(&tree, 2, &[]),
        &mut pending,
        WriteRequest::SetData(&set),
    )
    .unwrap();
    pending.applied(1);
    // Txn 1's record of "/" is gone; "/a" now belongs to txn 2 and stays.
    assert_eq!(pending.len(), 1);
    assert_eq!(pending.lookup(&tree, "/a").map(|v| v.stat.version), Some(1));
    pending.applied(2);
    assert!(pending.is_empty());
}
