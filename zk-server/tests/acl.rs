//! ACL enforcement for every op (PROTOCOL.md §12) and digest authentication.

mod support;

use support::RawClient;
use zk_proto::*;
use zk_server::TestingServer;

fn only(user: &str, pw: &str, perms: Perms) -> Vec<Acl> {
    vec![Acl::new(perms, Id::digest(user, pw))]
}

#[tokio::test]
async fn every_op_checks_its_permission() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let mut owner = RawClient::connect(&addr).await;
    owner.add_digest("owner", "pw").await.unwrap();
    owner
        .create_full(
            "/locked",
            Some(b"secret"),
            only("owner", "pw", Perms::ALL),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
    owner
        .create_full(
            "/locked/kid",
            None,
            Acl::open_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();

    let mut stranger = RawClient::connect(&addr).await;
    assert_eq!(
        stranger.get_data("/locked", false).await,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        stranger.children("/locked", false).await,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        stranger.set_data("/locked", b"x", -1).await,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        stranger
            .create("/locked/new", b"", CreateMode::Persistent)
            .await,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        stranger.delete("/locked/kid", -1).await,
        Err(ErrorCode::NoAuth)
    );
    // DELETE on the parent is checked before the node is looked up (Apache's order): no
    // NONODE that would hide the refusal.
    assert_eq!(
        stranger.delete("/locked/missing", -1).await,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        stranger.set_acl("/locked", Acl::open_unsafe(), -1).await,
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(stranger.get_acl("/locked").await, Err(ErrorCode::NoAuth));
    assert_eq!(
        stranger.exists("/locked", false).await,
        Err(ErrorCode::NoAuth)
    );
    let results = stranger
        .multi(vec![MultiOp::Check(CheckVersionRequest {
            path: "/locked".into(),
            version: -1,
        })])
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![MultiResult::Error(ErrorCode::NoAuth.as_i32())]
    );
    // Missing nodes answer NONODE, not NOAUTH, to exists.
    assert_eq!(
        stranger.exists("/missing", false).await,
        Err(ErrorCode::NoNode)
    );

    stranger.add_digest("owner", "pw").await.unwrap();
    assert_eq!(
        stranger.get_data("/locked", false).await.unwrap().0,
        Some(b"secret".to_vec())
    );
}

#[tokio::test]
async fn perms_are_granted_bit_by_bit() {
    let server = TestingServer::start().await.unwrap();
    let addr = server.connect_string();
    let mut c = RawClient::connect(&addr).await;
    c.create_full(
        "/ro",
        Some(b"v"),
        vec![Acl::new(Perms::READ | Perms::CREATE, Id::anyone())],
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    assert!(c.get_data("/ro", false).await.is_ok());
    assert!(c
        .create("/ro/child", b"", CreateMode::Persistent)
        .await
        .is_ok());
    assert_eq!(c.set_data("/ro", b"w", -1).await, Err(ErrorCode::NoAuth));
    assert_eq!(
        c.delete("/ro/child", -1).await,
        Err(ErrorCode::NoAuth),
        "DELETE is checked on the parent"
    );
}

#[tokio::test]
async fn get_acl_masks_digests_without_admin() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.add_digest("alice", "pw").await.unwrap();
    let acl = vec![
        Acl::new(Perms::READ, Id::anyone()),
        Acl::new(Perms::ALL, Id::digest("alice", "pw")),
    ];
    c.create_full("/m", None, acl.clone(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        c.get_acl("/m").await.unwrap().0,
        acl,
        "ADMIN sees the digest"
    );
    let mut reader = RawClient::connect(&server.connect_string()).await;
    let (seen, _) = reader.get_acl("/m").await.unwrap();
    assert_eq!(seen[1].id, Id::new("digest", "alice:x"));
}

#[tokio::test]
async fn auth_scheme_expands_to_the_creators_identities() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    assert_eq!(
        c.create_full("/a", None, Acl::creator_all(), CreateMode::Persistent)
            .await,
        Err(ErrorCode::InvalidAcl),
        "no authenticated identity yet"
    );
    c.add_digest("bob", "pw").await.unwrap();
    c.create_full("/a", None, Acl::creator_all(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(
        c.get_acl("/a").await.unwrap().0,
        only("bob", "pw", Perms::ALL)
    );
    assert_eq!(
        c.create_full(
            "/b",
            None,
            vec![Acl::new(Perms::ALL, Id::new("digest", "nohash"))],
            CreateMode::Persistent
        )
        .await,
        Err(ErrorCode::InvalidAcl)
    );
}

#[tokio::test]
async fn ip_acls_match_the_connection_address() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.create_full(
        "/lo",
        Some(b"x"),
        vec![Acl::new(Perms::ALL, Id::new("ip", "127.0.0.0/8"))],
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    assert!(c.get_data("/lo", false).await.is_ok());
    c.create_full(
        "/far",
        Some(b"x"),
        vec![Acl::new(Perms::ALL, Id::new("ip", "10.0.0.1"))],
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    assert_eq!(c.get_data("/far", false).await, Err(ErrorCode::NoAuth));
}

#[tokio::test]
async fn super_digest_bypasses_acls() {
    let server = TestingServer::builder()
        .super_digest(digest_id("super", "secret"))
        .start()
        .await
        .unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    c.add_digest("owner", "pw").await.unwrap();
    c.create_full(
        "/private",
        Some(b"x"),
        only("owner", "pw", Perms::ALL),
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    let mut admin = RawClient::connect(&server.connect_string()).await;
    admin.add_digest("super", "secret").await.unwrap();
    assert!(admin.get_data("/private", false).await.is_ok());
    assert!(admin
        .set_acl("/private", Acl::open_unsafe(), -1)
        .await
        .is_ok());
}

#[tokio::test]
async fn unknown_auth_scheme_fails_and_closes() {
    let server = TestingServer::start().await.unwrap();
    let mut c = RawClient::connect(&server.connect_string()).await;
    let packet = AuthPacket {
        auth_type: 0,
        scheme: "kerberos".into(),
        auth: b"x".to_vec(),
    };
    c.send(RequestHeader::AUTH_XID, OpCode::Auth, &|b| packet.encode(b))
        .await;
    let (h, _) = c.reply_to(RequestHeader::AUTH_XID).await.unwrap();
    assert_eq!(h.err, ErrorCode::AuthFailed.as_i32());
    assert!(c.closed_by_server().await);
}
