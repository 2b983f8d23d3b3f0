//! One client connection: a task that owns the socket, splits frames, decodes requests for the
//! core and writes what the core sends back.
//!
//! Bad input affects only this connection: an oversized or negative frame length, an
//! undecodable handshake or request header, or an unknown opcode closes it (the last after an
//! UNIMPLEMENTED reply). A request whose body does not decode, in a well-formed frame, is
//! answered MARSHALLINGERROR and the connection goes on, as Apache's.
//! Backpressure: the connection stops reading while 1,000 of its requests await an answer (as
//! Apache's `globalOutstandingLimit`) or 1 MiB of output is queued, and a client that lets
//! 64 MiB of output pile up is disconnected.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use zk_proto::frame::split_frame;
use zk_proto::{ConnectRequest, Decode, ErrorCode, Reader, Request, RequestHeader};

use super::{Event, Outbound};
use crate::admin;
use crate::config::ServerConfig;
use crate::core::Input;
use crate::ConnId;

/// Stop reading requests while this much output is queued.
const PAUSE_READING_AT: usize = 1 << 20;
/// Stop reading requests while this many await an answer.
const MAX_IN_FLIGHT: usize = 1000;
/// Room made in the input buffer before each read.
const READ_CHUNK: usize = 64 * 1024;
/// Disconnect a client that lets this much output pile up.
const MAX_QUEUED_OUTPUT: usize = 64 << 20;
/// How long a closing connection may go without writing anything before it is dropped with
/// its output unsent: a client that stopped reading (frozen, or gone without a FIN) must not
/// hold its socket, and its `maxClientCnxns` slot, forever.
const CLOSE_STALL_LIMIT: Duration = Duration::from_secs(5);

enum Phase {
    /// Waiting for the ConnectRequest (or a four-letter word).
    Handshake,
    /// Requests flow.
    Established,
    /// An unknown opcode arrived; read nothing more, wait for the core to close.
    Draining,
}

pub(super) async fn run(
    stream: TcpStream,
    remote: SocketAddr,
    conn: ConnId,
    events: &mpsc::UnboundedSender<Event>,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    config: &ServerConfig,
) {
    let (reader, mut writer) = stream.into_split();
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    let mut phase = Phase::Handshake;
    let mut closing = false;
    let mut in_flight = 0usize;
    let handshake_deadline = tokio::time::sleep(Duration::from_millis(
        u64::try_from(config.max_session_timeout()).unwrap_or(60_000),
    ));
    tokio::pin!(handshake_deadline);
    // Armed when the core asks to close, re-armed by every write that makes progress.
    let close_stall = tokio::time::sleep(Duration::MAX);
    tokio::pin!(close_stall);
    loop {
        if closing && output.is_empty() {
            break;
        }
        let can_read = !closing
            && output.len() < PAUSE_READING_AT
            && in_flight < MAX_IN_FLIGHT
            && !matches!(phase, Phase::Draining);
        // Frames that arrived while reading was paused are already buffered: handle them as
        // soon as there is room again, without waiting for more bytes from the client.
        if can_read && matches!(phase, Phase::Established) && !input.is_empty() {
            if let Err(reason) = process_frames(
                &mut input,
                &mut phase,
                conn,
                remote,
                events,
                &mut in_flight,
                config.jute_max_buffer,
            ) {
                tracing::debug!(%remote, %reason, "closing connection");
                break;
            }
        }
        tokio::select! {
            ready = reader.readable(), if can_read => {
                if ready.is_err() {
                    break;
                }
                // Read into a generous buffer only once data is there, so idle connections
                // hold no read buffer at all.
                input.reserve(READ_CHUNK);
                match reader.try_read_buf(&mut input) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                }
                if matches!(phase, Phase::Handshake) && input.len() >= 4 {
                    if let Some(word) = admin::four_letter_word(&input) {
                        four_letter_word(word, events, config, &mut writer).await;
                        break;
                    }
                }
                match process_frames(&mut input, &mut phase, conn, remote, events, &mut in_flight, config.jute_max_buffer) {
                    Ok(()) => {}
                    Err(reason) => {
                        tracing::debug!(%remote, %reason, "closing connection");
                        break;
                    }
                }
                if input.is_empty() && input.capacity() > READ_CHUNK {
                    input = BytesMut::new();
                }
            }
            message = outbound.recv() => {
                let Some(message) = message else { break };
                let was_closing = closing;
                closing |= queue(&mut output, &mut in_flight, message);
                while let Ok(message) = outbound.try_recv() {
                    closing |= queue(&mut output, &mut in_flight, message);
                }
                if closing && !was_closing {
                    close_stall.as_mut().reset(tokio::time::Instant::now() + CLOSE_STALL_LIMIT);
                }
                if output.len() > MAX_QUEUED_OUTPUT {
                    tracing::warn!(%remote, "client is not reading its replies; disconnecting");
                    break;
                }
            }
            written = writer.write_buf(&mut output), if !output.is_empty() => {
                match written {
                    Ok(n) if n > 0 && closing => {
                        close_stall.as_mut().reset(tokio::time::Instant::now() + CLOSE_STALL_LIMIT);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            () = &mut close_stall, if closing => {
                tracing::debug!(%remote, unsent = output.len(), "closing connection not reading; dropping it");
                break;
            }
            () = &mut handshake_deadline, if matches!(phase, Phase::Handshake) => {
                tracing::debug!(%remote, "no handshake in time; closing");
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}

/// Appends a frame to the output; true if the core asked to close.
fn queue(output: &mut BytesMut, in_flight: &mut usize, message: Outbound) -> bool {
    match message {
        Outbound::Frame { frame, reply } => {
            if reply {
                *in_flight = in_flight.saturating_sub(1);
            }
            output.extend_from_slice(&frame);
            false
        }
        Outbound::Close => true,
    }
}

/// Decodes the complete frames in `input` and sends them to the core in one event; the frames
/// before a bad one still go, then the error closes the connection.
fn process_frames(
    input: &mut BytesMut,
    phase: &mut Phase,
    conn: ConnId,
    remote: SocketAddr,
    events: &mpsc::UnboundedSender<Event>,
    in_flight: &mut usize,
    max_frame: usize,
) -> Result<(), String> {
    let mut inputs = Vec::new();
    let decoded = decode_frames(
        input,
        phase,
        conn,
        remote,
        in_flight,
        max_frame,
        &mut inputs,
    );
    if !inputs.is_empty() && events.send(Event::Inputs(inputs)).is_err() {
        return Err("server stopping".into());
    }
    decoded
}

/// Appends the core inputs of the complete frames in `input` to `inputs`, up to the limit
/// of requests in flight; a frame longer than `max_frame` (`jute.maxbuffer`) is an error.
fn decode_frames(
    input: &mut BytesMut,
    phase: &mut Phase,
    conn: ConnId,
    remote: SocketAddr,
    in_flight: &mut usize,
    max_frame: usize,
    inputs: &mut Vec<Input>,
) -> Result<(), String> {
    loop {
        if matches!(phase, Phase::Draining) {
            return Ok(());
        }
        let frame = match split_frame(input, max_frame) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let input_event = match phase {
            Phase::Handshake => {
                let request = ConnectRequest::from_bytes(&frame)
                    .map_err(|e| format!("bad handshake: {e}"))?;
                *phase = Phase::Established;
                Input::Connect {
                    conn,
                    request,
                    remote,
                }
            }
            Phase::Established => {
                let mut reader = Reader::new(&frame);
                let header = RequestHeader::decode(&mut reader)
                    .map_err(|e| format!("bad request header: {e}"))?;
                match header.op_code() {
                    // The frame's length is known: a body that does not decode is answered
                    // MARSHALLINGERROR and the connection goes on.
                    Ok(op) => match Request::decode_for(op, &mut reader) {
                        Ok(request) => Input::Request {
                            conn,
                            xid: header.xid,
                            request,
                        },
                        Err(e) => {
                            tracing::debug!(%remote, ?op, %e, "undecodable request body");
                            Input::Refused {
                                conn,
                                xid: header.xid,
                                code: ErrorCode::MarshallingError,
                            }
                        }
                    },
                    Err(_) => {
                        *phase = Phase::Draining;
                        Input::Refused {
                            conn,
                            xid: header.xid,
                            code: ErrorCode::Unimplemented,
                        }
                    }
                }
            }
            Phase::Draining => return Ok(()),
        };
        if !matches!(input_event, Input::Connect { .. }) {
            *in_flight += 1;
        }
        inputs.push(input_event);
        if *in_flight >= MAX_IN_FLIGHT {
            // Leave the rest buffered until answers come back.
            return Ok(());
        }
    }
}

async fn four_letter_word(
    word: &'static str,
    events: &mpsc::UnboundedSender<Event>,
    config: &ServerConfig,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
) {
    let text = if !config.four_letter_words.allows(word) {
        admin::not_whitelisted(word)
    } else if word == "ruok" {
        "imok".to_owned()
    } else {
        let (reply, rx) = oneshot::channel();
        if events.send(Event::FourLetter { word, reply }).is_err() {
            return;
        }
        rx.await.unwrap_or_default()
    };
    // A client that does not read its answer does not hold the connection for long.
    let _ = tokio::time::timeout(CLOSE_STALL_LIMIT, writer.write_all(text.as_bytes())).await;
}
