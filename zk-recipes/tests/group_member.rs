//! GroupMember against the embedded server: members see each other join, change their payload
//! and leave; a member whose session expires disappears from the others' view and comes back.

mod support;

use std::collections::BTreeMap;

use futures::{FutureExt, StreamExt};
use support::*;
use zk_recipes::cache::{CacheEvent, CacheEvents};
use zk_recipes::{Error, GroupMember};

fn view(entries: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .map(|(id, data)| ((*id).to_owned(), data.as_bytes().to_vec()))
        .collect()
}

/// Waits (on the member's cache events) until its view of the group is `want`.
async fn wait_view(
    member: &GroupMember,
    events: &mut CacheEvents,
    want: &BTreeMap<String, Vec<u8>>,
) {
    within(&format!("{} to see {want:?}", member.id()), async {
        while member.current_members() != *want {
            events
                .next()
                .await
                .expect("the member's event stream ended");
        }
    })
    .await
}

/// The next event about the member `id`, skipping others.
async fn next_about(events: &mut CacheEvents, id: &str) -> CacheEvent {
    within(&format!("an event about {id}"), async {
        loop {
            let event = events.next().await.expect("the event stream ended");
            if event
                .node()
                .is_some_and(|n| GroupMember::id_from_path(&n.path) == id)
            {
                return event;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_each_other_join_change_expire_and_leave() {
    let server = server().await;
    let clients = [
        client(&server.connect_string()).await,
        client(&server.connect_string()).await,
        client(&server.connect_string()).await,
    ];
    let observer = client(&server.connect_string()).await;
    let members: Vec<GroupMember> = ["m1", "m2", "m3"]
        .iter()
        .zip(&clients)
        .map(|(id, c)| {
            GroupMember::new(c.clone(), "/group", *id, format!("{id}-data").into_bytes())
                .expect("member")
        })
        .collect();
    let mut events: Vec<CacheEvents> = members.iter().map(GroupMember::events).collect();
    for m in &members {
        m.start().expect("start");
    }
    // Before its node exists a member still counts itself in.
    assert!(members[0].current_members().contains_key("m1"));

    let all = view(&[("m1", "m1-data"), ("m2", "m2-data"), ("m3", "m3-data")]);
    for (m, e) in members.iter().zip(events.iter_mut()) {
        assert!(m.wait_joined(PATIENCE).await.expect("joined"));
        wait_view(m, e, &all).await;
    }
    // The layout is Curator's: `<path>/<id>`, EPHEMERAL, data = payload.
    let (data, stat) = observer.get_data("/group/m2").await.expect("member node");
    assert_eq!(data, b"m2-data");
    assert_eq!(stat.ephemeral_owner, clients[1].session_id());

    // A new payload reaches everyone.
    members[1]
        .set_this_data(b"m2-new".to_vec())
        .await
        .expect("set data");
    assert_eq!(members[1].this_data(), b"m2-new");
    let changed = view(&[("m1", "m1-data"), ("m2", "m2-new"), ("m3", "m3-data")]);
    for (m, e) in members.iter().zip(events.iter_mut()) {
        wait_view(m, e, &changed).await;
    }

    // m2's session expires: the others see it leave, then come back with its payload (the
    // PersistentNode re-creates it with the new session).
    // (Forget the events that led here.)
    for e in &mut events {
        while e.next().now_or_never().flatten().is_some() {}
    }
    let old_session = clients[1].session_id();
    let mut states = clients[1].connection_states();
    assert!(server.expire_session(old_session).await);
    for i in [0, 2] {
        match next_about(&mut events[i], "m2").await {
            CacheEvent::Deleted(d) => assert_eq!(d.stat.ephemeral_owner, old_session),
            other => panic!(
                "expected m2 to leave {}'s view first, got {other:?}",
                members[i].id()
            ),
        }
        match next_about(&mut events[i], "m2").await {
            CacheEvent::Created(d) => {
                assert_eq!(d.data, b"m2-new");
                assert_ne!(d.stat.ephemeral_owner, old_session);
            }
            other => panic!("expected m2 to come back, got {other:?}"),
        }
        assert_eq!(members[i].current_members(), changed);
    }
    wait_state(&mut states, zk_client::ConnectionState::Reconnected).await;
    let (_, stat) = observer.get_data("/group/m2").await.expect("member node");
    assert_eq!(stat.ephemeral_owner, clients[1].session_id());
    wait_view(&members[1], &mut events[1], &changed).await;

    // m3 leaves: its node is deleted, the others see it go.
    members[2].close().await.expect("close m3");
    assert_eq!(observer.exists("/group/m3").await.expect("exists"), None);
    let left = view(&[("m1", "m1-data"), ("m2", "m2-new")]);
    for i in [0, 1] {
        wait_view(&members[i], &mut events[i], &left).await;
    }
    // A closed member cannot start again.
    assert_eq!(members[2].start(), Err(Error::Closed));

    for m in &members[..2] {
        m.close().await.expect("close");
    }
    wait_children(&observer, "/group", |c| c.is_empty()).await;
}

#[tokio::test]
async fn invalid_ids_are_refused() {
    let server = server().await;
    let c = client(&server.connect_string()).await;
    for id in ["", "a/b", ".", ".."] {
        assert!(matches!(
            GroupMember::new(c.clone(), "/group", id, Vec::new()),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(matches!(
        GroupMember::new(c, "/", "a", Vec::new()),
        Err(Error::InvalidArgument(_))
    ));
}
