//! The handshake that opens every quorum connection: both sides prove they are the configured
//! server they claim to be (CVE-2023-44981, CVE-2018-8012: an unauthenticated peer must not
//! vote or replicate).
//!
//! The side with the higher server id dials (see [`transport`](super::transport)):
//!
//! ```text
//! dialer   → acceptor  HELLO  int magic "ZKQ1" · int version 1 · byte auth · long from · long to · 32-byte nonce
//! acceptor → dialer    HELLO  (its own: from = acceptor, to = dialer, its nonce)
//! dialer   → acceptor  [32-byte MAC_dialer]                        when auth = 1
//! acceptor → dialer    [32-byte MAC_acceptor]                      when auth = 1
//!                      byte 1 (accepted)
//! ```
//!
//! The dialer proves first, so a member that is dialed by an impostor (or a peer with the
//! wrong secret) sees the bad MAC itself and logs it.
//!
//! `auth` is 1 when a [`QuorumSecret`] is configured (HMAC-SHA256), 0 when not. With a
//! secret, `MAC_x = HMAC-SHA256(secret, label_x · nonce_dialer · nonce_acceptor ·
//! long dialer · long acceptor)` with the labels `"zk-quorum-v1 acceptor"` and
//! `"zk-quorum-v1 dialer"`, so that neither MAC can be replayed in the other direction or on
//! another connection (both nonces are fresh), nor for another pair of ids. MACs are compared
//! in constant time. The acceptor answers only a dialer whose id is a configured member that
//! may dial it (higher than its own) and that addressed it by its own id; the dialer only
//! accepts the server it dialed. Without a secret, ids are taken on trust.
//!
//! Any failure closes the connection; the caller logs the [`HandshakeError`].

use std::collections::BTreeSet;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::QuorumSecret;
use crate::zab::Sid;

/// `"ZKQ1"`.
pub const MAGIC: u32 = 0x5A4B_5131;

/// The handshake's version.
pub const VERSION: i32 = 1;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 32;

/// Bytes of a MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;

const HELLO_LEN: usize = 4 + 4 + 1 + 8 + 8 + NONCE_LEN;
const ACCEPTED: u8 = 1;
const LABEL_ACCEPTOR: &[u8] = b"zk-quorum-v1 acceptor";
const LABEL_DIALER: &[u8] = b"zk-quorum-v1 dialer";

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The connection failed or closed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake took longer than allowed.
    #[error("timed out")]
    Timeout,
    /// The other side does not speak this protocol.
    #[error("not a quorum peer (magic {0:#x})")]
    BadMagic(u32),
    /// The other side speaks another version.
    #[error("unsupported handshake version {0}")]
    UnsupportedVersion(i32),
    /// The dialer is not a configured member.
    #[error("server id {0} is not a configured member")]
    UnknownSid(Sid),
    /// The dialer's id is not higher than ours: it should not dial us.
    #[error("server id {dialer} may not dial server {me} (the higher id dials)")]
    WrongDirection {
        /// The dialer's claimed id.
        dialer: Sid,
        /// Ours.
        me: Sid,
    },
    /// The dialer meant another server (a misconfigured address).
    #[error("the dialer addressed server {addressed}, but this is server {me}")]
    Misaddressed {
        /// Whom it addressed.
        addressed: Sid,
        /// Ours.
        me: Sid,
    },
    /// The acceptor is not the server we dialed.
    #[error("dialed server {expected} but server {got} answered")]
    UnexpectedPeer {
        /// Whom we dialed.
        expected: Sid,
        /// Who answered.
        got: Sid,
    },
    /// One side has a secret and the other has none.
    #[error("authentication mismatch: we {}, the peer {}", describe(*ours), describe(*theirs))]
    AuthMismatch {
        /// Whether we use a secret.
        ours: bool,
        /// Whether the peer does.
        theirs: bool,
    },
    /// The peer's MAC is wrong: it does not hold our secret.
    #[error(
        "server {peer} failed to prove it holds the quorum secret (a wrong secret, or an impostor)"
    )]
    BadMac {
        /// The id it claimed.
        peer: Sid,
    },
    /// The acceptor refused us (it logged why).
    #[error("the peer refused the connection")]
    Refused,
}

fn describe(secret: bool) -> &'static str {
    if secret {
        "require a quorum secret"
    } else {
        "use no quorum secret"
    }
}

impl HandshakeError {
    /// Whether the failure says the peer is not who it claims or lacks the secret (as opposed
    /// to a broken or slow connection): worth a warning, not just a debug line.
    pub fn is_auth_failure(&self) -> bool {
        !matches!(self, HandshakeError::Io(_) | HandshakeError::Timeout)
    }
}

struct Hello {
    auth: bool,
    from: Sid,
    to: Sid,
    nonce: [u8; NONCE_LEN],
}

impl Hello {
    fn encode(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        let mut w = &mut out[..];
        put(&mut w, &MAGIC.to_be_bytes());
        put(&mut w, &VERSION.to_be_bytes());
        put(&mut w, &[u8::from(self.auth)]);
        put(&mut w, &self.from.to_be_bytes());
        put(&mut w, &self.to.to_be_bytes());
        put(&mut w, &self.nonce);
        out
    }

    fn decode(bytes: &[u8; HELLO_LEN]) -> Result<Hello, HandshakeError> {
        let mut r = zk_proto::Reader::new(bytes);
        // The reads cannot fail: the array has exactly HELLO_LEN bytes.
        let bad = |_| HandshakeError::BadMagic(0);
        let magic = r.read_i32("magic").map_err(bad)? as u32;
        if magic != MAGIC {
            return Err(HandshakeError::BadMagic(magic));
        }
        let version = r.read_i32("version").map_err(bad)?;
        if version != VERSION {
            return Err(HandshakeError::UnsupportedVersion(version));
        }
        let auth = r.read_u8("auth").map_err(bad)? != 0;
        let from = r.read_i64("from").map_err(bad)? as u64;
        let to = r.read_i64("to").map_err(bad)? as u64;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(r.take("nonce", NONCE_LEN).map_err(bad)?);
        Ok(Hello {
            auth,
            from,
            to,
            nonce,
        })
    }
}

fn put(w: &mut &mut [u8], bytes: &[u8]) {
    let (head, tail) = std::mem::take(w).split_at_mut(bytes.len());
    head.copy_from_slice(bytes);
    *w = tail;
}

fn mac(
    secret: &QuorumSecret,
    label: &[u8],
    dialer_nonce: &[u8; NONCE_LEN],
    acceptor_nonce: &[u8; NONCE_LEN],
    dialer: Sid,
    acceptor: Sid,
) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut m = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable_key(),
    };
    m.update(label);
    m.update(dialer_nonce);
    m.update(acceptor_nonce);
    m.update(&dialer.to_be_bytes());
    m.update(&acceptor.to_be_bytes());
    m
}

#[cold]
fn unreachable_key() -> Hmac<Sha256> {
    // `new_from_slice` fails only for MACs with a fixed key size, which HMAC has not.
    <Hmac<Sha256> as Mac>::new(&Default::default())
}

fn nonce() -> [u8; NONCE_LEN] {
    rand::random()
}

/// Dials side: proves to `peer` that we are `me`, and checks that it is `peer`.
///
/// # Errors
/// [`HandshakeError`]; the stream must then be dropped.
///
/// # Cancellation safety
/// Not cancellation safe: a cancelled handshake leaves the stream unusable (drop it).
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: Sid,
    peer: Sid,
    secret: Option<&QuorumSecret>,
    timeout: Duration,
) -> Result<(), HandshakeError> {
    tokio::time::timeout(timeout, dial_inner(stream, me, peer, secret))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

async fn dial_inner<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: Sid,
    peer: Sid,
    secret: Option<&QuorumSecret>,
) -> Result<(), HandshakeError> {
    let mine = Hello {
        auth: secret.is_some(),
        from: me,
        to: peer,
        nonce: nonce(),
    };
    stream.write_all(&mine.encode()).await?;
    stream.flush().await?;
    let mut buf = [0u8; HELLO_LEN];
    stream.read_exact(&mut buf).await?;
    let theirs = Hello::decode(&buf)?;
    if theirs.from != peer {
        return Err(HandshakeError::UnexpectedPeer {
            expected: peer,
            got: theirs.from,
        });
    }
    if theirs.to != me {
        return Err(HandshakeError::Misaddressed {
            addressed: theirs.to,
            me,
        });
    }
    if theirs.auth != mine.auth {
        return Err(HandshakeError::AuthMismatch {
            ours: mine.auth,
            theirs: theirs.auth,
        });
    }
    let refused = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            HandshakeError::Refused
        } else {
            HandshakeError::Io(e)
        }
    };
    if let Some(secret) = secret {
        let proof = mac(secret, LABEL_DIALER, &mine.nonce, &theirs.nonce, me, peer)
            .finalize()
            .into_bytes();
        stream.write_all(&proof).await?;
        stream.flush().await?;
        let mut their_mac = [0u8; MAC_LEN];
        stream.read_exact(&mut their_mac).await.map_err(refused)?;
        mac(secret, LABEL_ACCEPTOR, &mine.nonce, &theirs.nonce, me, peer)
            .verify_slice(&their_mac)
            .map_err(|_| HandshakeError::BadMac { peer })?;
    }
    let mut ok = [0u8; 1];
    stream.read_exact(&mut ok).await.map_err(refused)?;
    if ok[0] == ACCEPTED {
        Ok(())
    } else {
        Err(HandshakeError::Refused)
    }
}

/// Accepting side: learns who dialed, checks that it is a member of `members` with an id
/// above `me` that addressed us, and (with a secret) that it holds the secret, proving in turn
/// that we do. Returns the dialer's id.
///
/// # Errors
/// [`HandshakeError`]; the stream must then be dropped.
///
/// # Cancellation safety
/// Not cancellation safe: a cancelled handshake leaves the stream unusable (drop it).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: Sid,
    members: &BTreeSet<Sid>,
    secret: Option<&QuorumSecret>,
    timeout: Duration,
) -> Result<Sid, HandshakeError> {
    tokio::time::timeout(timeout, accept_inner(stream, me, members, secret))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

async fn accept_inner<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: Sid,
    members: &BTreeSet<Sid>,
    secret: Option<&QuorumSecret>,
) -> Result<Sid, HandshakeError> {
    let mut buf = [0u8; HELLO_LEN];
    stream.read_exact(&mut buf).await?;
    let theirs = Hello::decode(&buf)?;
    let dialer = theirs.from;
    if !members.contains(&dialer) || dialer == me {
        return Err(HandshakeError::UnknownSid(dialer));
    }
    if dialer < me {
        return Err(HandshakeError::WrongDirection { dialer, me });
    }
    if theirs.to != me {
        return Err(HandshakeError::Misaddressed {
            addressed: theirs.to,
            me,
        });
    }
    let ours = secret.is_some();
    if theirs.auth != ours {
        return Err(HandshakeError::AuthMismatch {
            ours,
            theirs: theirs.auth,
        });
    }
    let mine = Hello {
        auth: ours,
        from: me,
        to: dialer,
        nonce: nonce(),
    };
    stream.write_all(&mine.encode()).await?;
    stream.flush().await?;
    if let Some(secret) = secret {
        let mut their_mac = [0u8; MAC_LEN];
        stream.read_exact(&mut their_mac).await?;
        mac(secret, LABEL_DIALER, &theirs.nonce, &mine.nonce, dialer, me)
            .verify_slice(&their_mac)
            .map_err(|_| HandshakeError::BadMac { peer: dialer })?;
        let proof = mac(
            secret,
            LABEL_ACCEPTOR,
            &theirs.nonce,
            &mine.nonce,
            dialer,
            me,
        )
        .finalize()
        .into_bytes();
        stream.write_all(&proof).await?;
    }
    stream.write_all(&[ACCEPTED]).await?;
    stream.flush().await?;
    Ok(dialer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> QuorumSecret {
        QuorumSecret::new(s.as_bytes().to_vec()).expect("long enough")
    }

    fn members() -> BTreeSet<Sid> {
        [1, 2, 3].into_iter().collect()
    }

    const T: Duration = Duration::from_secs(5);

    async fn run(
        dialer: Sid,
        dial_to: Sid,
        dialer_secret: Option<QuorumSecret>,
        acceptor: Sid,
        acceptor_secret: Option<QuorumSecret>,
    ) -> (Result<(), HandshakeError>, Result<Sid, HandshakeError>) {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let d = tokio::spawn(async move {
            let r = dial(&mut a, dialer, dial_to, dialer_secret.as_ref(), T).await;
            drop(a);
            r
        });
        let r = accept(&mut b, acceptor, &members(), acceptor_secret.as_ref(), T).await;
        drop(b);
        (d.await.expect("no panic"), r)
    }

    #[tokio::test]
    async fn members_with_the_secret_connect() {
        let s = secret("0123456789abcdef-secret");
        let (d, a) = run(3, 1, Some(s.clone()), 1, Some(s)).await;
        assert!(d.is_ok(), "{d:?}");
        assert_eq!(a.expect("accepted"), 3);
        let (d, a) = run(2, 1, None, 1, None).await;
        assert!(d.is_ok() && a.is_ok(), "no secret: trust");
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_both_ways() {
        let good = secret("0123456789abcdef-secret");
        let bad = secret("0123456789abcdef-wrong!");
        // The dialer proves first: the acceptor detects the mismatch.
        let (d, a) = run(3, 1, Some(bad), 1, Some(good)).await;
        assert!(
            matches!(a, Err(HandshakeError::BadMac { peer: 3 })),
            "{a:?}"
        );
        assert!(matches!(d, Err(HandshakeError::Refused)), "{d:?}");
        let (d, a) = run(3, 1, None, 1, Some(secret("0123456789abcdef-secret"))).await;
        assert!(
            matches!(a, Err(HandshakeError::AuthMismatch { .. })),
            "{a:?}"
        );
        assert!(
            matches!(d, Err(HandshakeError::Refused | HandshakeError::Io(_))),
            "{d:?}"
        );
    }

    #[tokio::test]
    async fn unknown_lower_or_misaddressed_dialers_are_refused() {
        let s = || Some(secret("0123456789abcdef-secret"));
        let (d, a) = run(9, 1, s(), 1, s()).await;
        assert!(matches!(a, Err(HandshakeError::UnknownSid(9))), "{a:?}");
        assert!(d.is_err());
        let (_, a) = run(1, 2, s(), 2, s()).await;
        assert!(
            matches!(a, Err(HandshakeError::WrongDirection { .. })),
            "{a:?}"
        );
        let (_, a) = run(3, 2, s(), 1, s()).await;
        assert!(
            matches!(a, Err(HandshakeError::Misaddressed { .. })),
            "{a:?}"
        );
    }

    /// An impostor listening on member 1's address: it answers as 1 (or as someone else)
    /// and accepts anything, but cannot produce 1's MAC.
    async fn impostor(answer_as: Sid) -> Result<(), HandshakeError> {
        let (mut a, mut b) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let mut hello = [0u8; HELLO_LEN];
            b.read_exact(&mut hello).await?;
            let theirs = Hello::decode(&hello)?;
            let mine = Hello {
                auth: true,
                from: answer_as,
                to: theirs.from,
                nonce: nonce(),
            };
            b.write_all(&mine.encode()).await?;
            let mut mac = [0u8; MAC_LEN];
            b.read_exact(&mut mac).await?;
            b.write_all(&[0x5A; MAC_LEN]).await?;
            b.write_all(&[ACCEPTED]).await?;
            Ok::<_, HandshakeError>(())
        });
        dial(&mut a, 3, 1, Some(&secret("0123456789abcdef-secret")), T).await
    }

    #[tokio::test]
    async fn the_dialer_checks_who_answers() {
        let r = impostor(1).await;
        assert!(
            matches!(r, Err(HandshakeError::BadMac { peer: 1 })),
            "{r:?}"
        );
        let r = impostor(2).await;
        assert!(
            matches!(
                r,
                Err(HandshakeError::UnexpectedPeer {
                    expected: 1,
                    got: 2
                })
            ),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn garbage_is_not_a_hello() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let _ = a.write_all(&[0xAB; HELLO_LEN]).await;
        });
        let r = accept(&mut b, 1, &members(), None, T).await;
        assert!(matches!(r, Err(HandshakeError::BadMagic(_))), "{r:?}");
    }

    #[tokio::test]
    async fn a_silent_dialer_times_out() {
        let (_a, mut b) = tokio::io::duplex(1024);
        let r = accept(&mut b, 1, &members(), None, Duration::from_millis(50)).await;
        assert!(matches!(r, Err(HandshakeError::Timeout)), "{r:?}");
    }
}
