//! Read-only servers: a client that allows them connects to one while no server with a quorum
//! is reachable, reports READ_ONLY, and moves to a read-write server as soon as one answers.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use support::{next_state, PATIENCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use zk::client::{ConnectionState, Error};
use zk::proto::frame::write_frame;
use zk::proto::{ConnectResponse, Encode, ReplyHeader};
use zk::server::TestingServer;

/// NOTREADONLY: what a read-only server answers to a write.
const NOT_READ_ONLY: i32 = -119;

/// A stand-in for a server partitioned from its quorum in read-only mode: it accepts sessions
/// as read-only, answers pings, refuses every other request with NOTREADONLY, and answers
/// `isro` with `ro`. Counts the `isro` probes it gets.
async fn read_only_server() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let probes = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn({
        let probes = probes.clone();
        async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_read_only(socket, probes.clone()));
            }
        }
    });
    (addr, probes, task)
}

async fn serve_read_only(mut socket: TcpStream, probes: Arc<AtomicUsize>) -> std::io::Result<()> {
    let mut head = [0u8; 4];
    socket.read_exact(&mut head).await?;
    if &head == b"isro" {
        probes.fetch_add(1, Ordering::SeqCst);
        return socket.write_all(b"ro").await;
    }
    // The ConnectRequest: its content does not matter here.
    let mut request = vec![0u8; u32::from_be_bytes(head).min(4096) as usize];
    socket.read_exact(&mut request).await?;
    let mut out = BytesMut::new();
    let response = ConnectResponse {
        protocol_version: 0,
        timeout: 4000,
        session_id: 0x5a5a,
        passwd: vec![0; 16],
        read_only: Some(true),
    };
    write_frame(&mut out, |b| response.encode(b));
    socket.write_all(&out).await?;
    loop {
        socket.read_exact(&mut head).await?;
        let mut frame = vec![0u8; u32::from_be_bytes(head).min(1 << 20) as usize];
        socket.read_exact(&mut frame).await?;
        let xid = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let err = if xid == -2 { 0 } else { NOT_READ_ONLY };
        out.clear();
        write_frame(&mut out, |b| ReplyHeader { xid, zxid: 0, err }.encode(b));
        socket.write_all(&out).await?;
    }
}

#[tokio::test]
async fn a_client_on_a_read_only_server_moves_to_a_read_write_one_when_it_appears() {
    let mut server = TestingServer::start().await.unwrap();
    server.stop().await;
    let (read_only, probes, fake) = read_only_server().await;

    let client = support::client_builder(&format!("{read_only},{}", server.connect_string()))
        .can_be_read_only(true)
        .build()
        .unwrap();
    let mut states = client.connection_states();
    assert_eq!(next_state(&mut states).await, ConnectionState::ReadOnly);
    let err = client.create("/written").await.unwrap_err();
    assert!(matches!(err, Error::NotReadOnly), "{err:?}");

    // With the other server down, probes fail and the client stays where it is.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        futures::FutureExt::now_or_never(futures::StreamExt::next(&mut states)).is_none(),
        "no state change while no read-write server answers"
    );
    assert_eq!(
        probes.load(Ordering::SeqCst),
        0,
        "it never probes its own server"
    );

    server.restart().await.unwrap();
    let moved = tokio::time::timeout(PATIENCE, async {
        loop {
            match next_state(&mut states).await {
                ConnectionState::Connected | ConnectionState::Reconnected => return,
                other => assert!(
                    matches!(other, ConnectionState::Suspended | ConnectionState::Lost),
                    "{other:?}"
                ),
            }
        }
    });
    moved
        .await
        .expect("the client moves to the read-write server");
    client.create("/written").await.expect("writes work there");
    client.close().await.unwrap();
    fake.abort();
}
